package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	rt "github.com/unionfsd/unionfsd/runtime"
)

// The OCI runtime commands, as runc has them: spec, create, start, state,
// kill, delete (run -b is in run.go).

var bundleOpts struct {
	bundle   string
	rootless bool
	force    bool
}

func init() {
	bundleFlag := func(fs *pflag.FlagSet) {
		fs.StringVarP(&bundleOpts.bundle, "bundle", "b", ".", "the bundle dir (holding config.json)")
	}
	register(&command{name: "spec", args: "[--rootless] [-b BUNDLE]",
		summary: "write a default OCI config.json into a bundle dir (as runc spec)",
		flags: func(fs *pflag.FlagSet) {
			bundleFlag(fs)
			fs.BoolVar(&bundleOpts.rootless, "rootless", false, "a config for an unprivileged user (user namespace)")
		},
		run: runSpec})
	register(&command{name: "create", args: "[-b BUNDLE] [--pid-file F] [--console-socket S] ID",
		summary: "create a container from an OCI bundle; its process waits for start",
		flags:   func(fs *pflag.FlagSet) { bundleFlag(fs); createFlags(fs) }, run: runCreate})
	register(&command{name: "start", args: "ID", summary: "start the process of a created container", run: runStart})
	register(&command{name: "state", args: "ID", summary: "print a container's OCI state as JSON", run: runState})
	register(&command{name: "kill", args: "[--all] ID [SIGNAL]", summary: "send a signal (default TERM) to a container's process",
		flags: killFlags, run: runKill})
	register(&command{name: "delete", args: "[-f] ID",
		summary: "delete a stopped or created container (-f: also a running one)",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&bundleOpts.force, "force", "f", false, "kill a running container first")
		},
		run: runDelete})
}

// storeRoot is the absolute store root, under which containers live.
func storeRoot(g *globals) (string, error) {
	s, err := g.store()
	if err != nil {
		return "", err
	}
	return s.Root(), nil
}

// rootAndID reads the one container ID argument and the store root.
func rootAndID(g *globals, args []string) (root, id string, err error) {
	if len(args) != 1 {
		return "", "", usagef("want one container ID")
	}
	root, err = storeRoot(g)
	return root, args[0], err
}

func runSpec(g *globals, args []string) error {
	if len(args) != 0 {
		return usagef("takes no arguments")
	}
	p := filepath.Join(bundleOpts.bundle, "config.json")
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("%s exists: remove it first", p)
	}
	data, err := json.MarshalIndent(rt.DefaultSpec(bundleOpts.rootless, uint32(os.Getuid()), uint32(os.Getgid())), "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(p, append(data, '\n'), 0o644)
}

func runStart(g *globals, args []string) error {
	root, id, err := rootAndID(g, args)
	if err != nil {
		return err
	}
	return rt.Start(root, id, g.warn)
}

// parseSignal reads KILL, SIGKILL or 9.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, errors.New("unknown signal " + s)
}

func runDelete(g *globals, args []string) error {
	root, id, err := rootAndID(g, args)
	if err != nil {
		return err
	}
	err = rt.Delete(root, id, bundleOpts.force, g.warn)
	if bundleOpts.force && errors.Is(err, rt.ErrNotFound) {
		return nil // as runc: podman deletes --force after a failed create
	}
	return err
}
