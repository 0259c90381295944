package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/internal/version"
)

// runc's global flags, which podman, conmon, CRI-O and containerd pass to
// any runtime that speaks runc's command line:
//
//	crun-lite [--root DIR] [--log FILE] [--log-format text|json] [--debug]
//	          [--systemd-cgroup] COMMAND ...
//
// --root is crun-lite's store (containers live in DIR/containers/ID).
// With --log, warnings and errors go to FILE (errors to stderr too, as
// runc does): conmon gives a runtime's stderr to the container, and podman
// reads the error of a failed create from the log, one JSON object.

type runcGlobals struct {
	logPath       string
	logFormat     string
	debug         bool
	systemdCgroup bool
	version       bool
}

func (r *runcGlobals) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&r.logPath, "log", r.logPath, "write warnings and errors to this file (runc's --log)")
	fs.StringVar(&r.logFormat, "log-format", r.logFormatOr("text"), "format of --log: text or json")
	fs.BoolVar(&r.debug, "debug", r.debug, "log debug messages too")
	fs.BoolVar(&r.systemdCgroup, "systemd-cgroup", r.systemdCgroup, "manage cgroups through systemd (not supported)")
}

func (r *runcGlobals) logFormatOr(def string) string {
	if r.logFormat == "" {
		return def
	}
	return r.logFormat
}

// check refuses what crun-lite cannot do, before any command runs.
func (r *runcGlobals) check() error {
	if r.logFormat != "text" && r.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", r.logFormat)
	}
	if r.systemdCgroup {
		return errors.New("--systemd-cgroup is not supported: crun-lite manages cgroups through cgroupfs only (with podman: --cgroup-manager cgroupfs)")
	}
	if r.debug {
		os.Setenv("CRUN_LITE_DEBUG", "1")
	}
	return nil
}

// log appends one line at level to --log; false when there is no log.
func (r *runcGlobals) log(level, msg string) bool {
	if r.logPath == "" {
		return false
	}
	f, err := os.OpenFile(r.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return false
	}
	defer f.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var line []byte
	if r.logFormat == "json" {
		line, _ = json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, now})
	} else {
		line = []byte(fmt.Sprintf("time=%q level=%s msg=%q", now, level, msg))
	}
	_, err = f.Write(append(line, '\n'))
	return err == nil
}

// logDebug notes the command line with --debug.
func (r *runcGlobals) logDebug(argv []string) {
	if r.debug {
		r.log("debug", "crun-lite "+strings.Join(argv, " "))
	}
}

// printVersion prints runc's --version layout.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "crun-lite version %s\nspec: %s\ngo: %s\n", version.String(), specs.Version, goruntime.Version())
}
