// Command unionfsd mounts a union of directories with FUSE: read-only lower
// layers under an optional writable upper layer, with copy-up on write and
// OCI whiteouts for deletions. It takes unionfs-fuse style branch lists and
// overlay / fuse-overlayfs style -o lowerdir=,upperdir=,workdir= options, so
// it also works as "mount -t fuse.unionfsd".
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/unionfsd/unionfsd/internal/version"
)

// subcommands maps a first argument such as "explain" to its handler, which
// gets the remaining arguments and returns the exit status. The handlers
// register themselves (explain.go, diff.go, check.go). An argument that is
// not a registered name is a branch list, so a branch dir named like a
// subcommand can always be written as "./name".
var subcommands = map[string]func(args []string) int{}

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // bad input or a failed mount
	exitUsage = 2 // bad command-line syntax
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if isAutoUnmountWatcher() {
		return watchAndUnmount(args)
	}
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			return sub(args[1:])
		}
	}
	rep, err := reporterFromEnv()
	if err != nil {
		return printError(err)
	}
	return mountCommand(args, rep)
}

// mountCommand parses, checks and mounts; rep says where the outcome goes
// (the terminal, or the parent waiting for a background daemon).
func mountCommand(args []string, rep reporter) int {
	euid := os.Geteuid()
	o, err := parseArgs(args, euid)
	if err != nil {
		return rep.fail(err)
	}
	switch {
	case o.help:
		fmt.Print(helpText)
		return exitOK
	case o.version:
		fmt.Println("unionfsd " + version.String())
		return exitOK
	}
	if err := prepare(o, euid); err != nil {
		return rep.fail(err)
	}
	if _, isDaemon := rep.(*daemonReporter); !isDaemon && !o.foreground {
		return startDaemon(args)
	}
	return serve(o, rep)
}

// prepare runs every check that can fail before the mount. Checks without
// side effects come first: Validate may create the workdir.
func prepare(o *options, euid int) error {
	if err := checkKernel(); err != nil {
		return err
	}
	mnt, err := checkMountpoint(o.mountpoint)
	if err != nil {
		return err
	}
	o.mountpoint = mnt
	if err := checkCanMount(mnt, &o.cfg, euid); err != nil {
		return err
	}
	if err := o.peer.prepare(&o.cfg); err != nil {
		return err
	}
	if err := checkLayersApart(mnt, &o.cfg); err != nil {
		return err
	}
	return o.cfg.Validate()
}

// printError prints err as the single "unionfsd: ..." line and returns the
// exit status for it.
func printError(err error) int {
	fmt.Fprintln(os.Stderr, "unionfsd: "+oneLine(err.Error()))
	return exitCode(err)
}

func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFail
}

// oneLine keeps error text on one line: some tools (fusermount) end their
// messages with a newline.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// mountError rephrases an error from unionfs.Mount as "<mnt>: <cause>".
func mountError(mnt string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "mount "+mnt+": ")
	return fmt.Errorf("%s: mount failed: %s", mnt, msg)
}
