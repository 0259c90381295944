package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	rt "github.com/unionfsd/unionfsd/runtime"
)

// exec: runc's `exec` (and docker's -i, -u, -w, -e spellings).

var execOpts struct {
	process, pidFile, consoleSocket, cwd, user string
	env, caps                                  []string
	tty, detach, noNewPrivs, interactive       bool
	preserveFDs                                int
	gids                                       []uint
	noSubreaper                                bool
}

func init() {
	register(&command{
		name:    "exec",
		args:    "[FLAGS] ID [COMMAND [ARG...]]",
		summary: "run a command in a running container (its namespaces, cgroups and process settings)",
		flags:   execFlags,
		run:     runExec,
	})
}

func execFlags(fs *pflag.FlagSet) {
	// Flags after ID belong to the command.
	fs.SetInterspersed(false)
	fs.StringVarP(&execOpts.process, "process", "p", "", "a runtime-spec Process JSON file to run instead of the container's process settings")
	fs.BoolVarP(&execOpts.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fs.BoolVarP(&execOpts.interactive, "interactive", "i", false, "accepted for docker's -it: stdin is always passed on")
	fs.BoolVarP(&execOpts.detach, "detach", "d", false, "return once the command runs (its pid goes to --pid-file)")
	fs.StringVar(&execOpts.pidFile, "pid-file", "", "write the command's pid to this file")
	fs.StringVar(&execOpts.consoleSocket, "console-socket", "", "with -t: send the pty master to this unix socket instead of relaying it")
	fs.StringVarP(&execOpts.cwd, "cwd", "w", "", "working directory inside the container")
	fs.StringArrayVarP(&execOpts.env, "env", "e", nil, "set an environment variable K=V (K alone: pass the caller's value)")
	fs.StringVarP(&execOpts.user, "user", "u", "", "UID[:GID] or USER[:GROUP] to run as")
	fs.StringArrayVarP(&execOpts.caps, "cap", "c", nil, "add a capability (CAP_NET_ADMIN or NET_ADMIN)")
	fs.BoolVar(&execOpts.noNewPrivs, "no-new-privs", false, "set no_new_privs")
	fs.IntVar(&execOpts.preserveFDs, "preserve-fds", 0, "pass on N more descriptors (3 .. 3+N-1)")
	fs.UintSliceVarP(&execOpts.gids, "additional-gids", "g", nil, "add supplementary groups (GID,GID... or repeated)")
	fs.BoolVar(&execOpts.noSubreaper, "no-subreaper", false, "accepted for runc's command line: crun-lite exec never is a subreaper")
}

// runExec exits the process itself with the command's status, as run does.
func runExec(g *globals, args []string) error {
	code, err := doExec(g, args)
	if err != nil {
		fmt.Fprintf(g.stderr, "crun-lite exec: %v\n", err)
	}
	if code != 0 {
		os.Exit(code)
	}
	return nil
}

func doExec(g *globals, args []string) (int, error) {
	if len(args) == 0 {
		return rt.ExitRunner, fmt.Errorf("want ID [COMMAND [ARG...]]")
	}
	var proc *specs.Process
	if execOpts.process != "" {
		var err error
		if proc, err = readProcess(execOpts.process); err != nil {
			return rt.ExitRunner, err
		}
	}
	root, err := storeRoot(g)
	if err != nil {
		return rt.ExitRunner, err
	}
	var gids []uint32
	for _, gid := range execOpts.gids {
		if gid >= 1<<32-1 {
			return rt.ExitRunner, fmt.Errorf("--additional-gids %d: out of range", gid)
		}
		gids = append(gids, uint32(gid))
	}
	stdio := rt.Stdio{In: os.Stdin, Out: fileOr(g.stdout, os.Stdout), Err: fileOr(g.stderr, os.Stderr)}
	return rt.Exec(root, args[0], rt.ExecOptions{AdditionalGids: gids,
		Process: proc, Args: args[1:], Env: execOpts.env, Cwd: execOpts.cwd, User: execOpts.user,
		Caps: execOpts.caps, NoNewPrivs: execOpts.noNewPrivs, TTY: execOpts.tty, Detach: execOpts.detach,
		PidFile: execOpts.pidFile, ConsoleSocket: execOpts.consoleSocket, PreserveFDs: execOpts.preserveFDs,
		Stdio: stdio, Warn: g.warn,
	})
}

// readProcess reads a runtime-spec Process; unknown fields are errors.
func readProcess(path string) (*specs.Process, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--process: %w", err)
	}
	var p specs.Process
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("--process %s: %v", path, err)
	}
	return &p, nil
}
