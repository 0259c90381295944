package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	rt "github.com/unionfsd/unionfsd/runtime"
)

// The rest of runc's command line: create's flags, state in runc's
// layout, kill --all, list and features.

var createOpts struct {
	pidFile       string
	consoleSocket string
	preserveFDs   uint
	noNewKeyring  bool
	noPivot       bool
}

func createFlags(fs *pflag.FlagSet) {
	fs.StringVar(&createOpts.pidFile, "pid-file", "", "write the container process's pid to this file")
	fs.StringVar(&createOpts.consoleSocket, "console-socket", "", "unix socket to send the pty master of a terminal container to")
	fs.UintVar(&createOpts.preserveFDs, "preserve-fds", 0, "pass this many descriptors after stderr on to the container (only 0)")
	fs.BoolVar(&createOpts.noNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	fs.BoolVar(&createOpts.noPivot, "no-pivot", false, "use chroot instead of pivot_root (not supported)")
}

func runCreate(g *globals, args []string) error {
	root, id, err := rootAndID(g, args)
	if err != nil {
		return err
	}
	if createOpts.noPivot {
		return fmt.Errorf("--no-pivot is not supported: crun-lite always uses pivot_root (a root on a ramfs cannot be one)")
	}
	if createOpts.preserveFDs > 0 {
		return fmt.Errorf("--preserve-fds %d is not supported: the container gets only stdin, stdout and stderr", createOpts.preserveFDs)
	}
	o := rt.BundleOptions{Bundle: bundleOpts.bundle, Warn: g.warn, NoNewKeyring: createOpts.noNewKeyring,
		Stdio: rt.Stdio{In: os.Stdin, Out: fileOr(g.stdout, os.Stdout), Err: fileOr(g.stderr, os.Stderr)}}
	if createOpts.consoleSocket != "" {
		sock, err := dialConsoleSocket(createOpts.consoleSocket)
		if err != nil {
			return err
		}
		defer sock.Close()
		o.ConsoleSocket = sock
	}
	if err := rt.CreateBundle(root, id, o); err != nil {
		return err
	}
	if createOpts.pidFile == "" {
		return nil
	}
	st, err := rt.RuncStateOf(root, id)
	if err == nil {
		err = writePidFile(createOpts.pidFile, st.Pid)
	}
	if err != nil {
		rt.Remove(root, id, true)
		return err
	}
	return nil
}

// dialConsoleSocket connects to the caller's console socket.
func dialConsoleSocket(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("--console-socket %s: %w", path, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("--console-socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// writePidFile writes pid the way runc does: to a temporary file renamed
// over path, so a reader never sees it half-written.
func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("--pid-file %s: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file %s: %w", path, err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--pid-file %s: %w", path, err)
	}
	return nil
}

func runState(g *globals, args []string) error {
	root, id, err := rootAndID(g, args)
	if err != nil {
		return err
	}
	st, err := rt.RuncStateOf(root, id)
	if err != nil {
		return err
	}
	return printJSON(g, st)
}

var killAll bool

func killFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&killAll, "all", "a", false, "signal every process of the container, not only its init")
}

func runKill(g *globals, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("want ID [SIGNAL]")
	}
	sig := unix.SIGTERM
	if len(args) == 2 {
		var err error
		if sig, err = parseSignal(args[1]); err != nil {
			return usagef("%v", err)
		}
	}
	root, err := storeRoot(g)
	if err != nil {
		return err
	}
	if killAll {
		return rt.KillAll(root, args[0], sig)
	}
	return rt.Kill(root, args[0], sig)
}

var listOpts struct {
	format string
	quiet  bool
}

func init() {
	register(&command{name: "list", args: "[--format table|json] [-q]",
		summary: "list the containers, as runc list",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&listOpts.format, "format", "f", "table", "table or json")
			fs.BoolVar(&listOpts.quiet, "quiet-ids", false, "print only the IDs (runc's -q; -q is crun-lite's --quiet)")
		},
		run: runList})
	register(&command{name: "pause", args: "ID", summary: "freeze a container's processes (one created with a cgroupsPath)",
		run: func(g *globals, args []string) error {
			root, id, err := rootAndID(g, args)
			if err != nil {
				return err
			}
			return rt.PauseContainer(root, id)
		}})
	register(&command{name: "resume", args: "ID", summary: "thaw a paused container",
		run: func(g *globals, args []string) error {
			root, id, err := rootAndID(g, args)
			if err != nil {
				return err
			}
			return rt.ResumeContainer(root, id)
		}})
	register(&command{name: "features", args: "", summary: "print what this runtime supports (runtime-spec features JSON)",
		run: runFeatures})
}

func runList(g *globals, args []string) error {
	if len(args) != 0 {
		return usagef("takes no arguments")
	}
	root, err := storeRoot(g)
	if err != nil {
		return err
	}
	states, err := rt.RuncStates(root)
	if err != nil {
		return err
	}
	switch {
	case listOpts.quiet || (g.quiet && listOpts.format == "table"):
		for _, s := range states {
			fmt.Fprintln(g.stdout, s.ID)
		}
	case listOpts.format == "json":
		if states == nil {
			states = []*rt.RuncState{}
		}
		return json.NewEncoder(g.stdout).Encode(states)
	case listOpts.format == "table":
		w := tabwriter.NewWriter(g.stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, s := range states {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
		}
		return w.Flush()
	default:
		return usagef("--format %q: want table or json", listOpts.format)
	}
	return nil
}

func runFeatures(g *globals, args []string) error {
	if len(args) != 0 {
		return usagef("takes no arguments")
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "    ")
	return enc.Encode(rt.Features())
}
