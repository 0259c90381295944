package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// With `run --init` the container's PID 1 is not the command but a small
// init of ours (docker's --init runs tini for the same reasons). A command
// as PID 1 gets no default signal actions (SIGTERM does nothing unless it
// has a handler) and inherits every orphan of the container, which it
// usually never waits for. The reaper passes signals on to the command,
// waits for every process that ends up as its child, and exits with the
// command's status.
//
// The supervisor starts the reaper where it would start the container
// init; the reaper takes the go-ahead (it is in the cgroups then) and
// starts the usual init stage as its child, which sets the container up
// and becomes the command. The reaper cannot be executed inside the
// container instead: our binary may need the host's dynamic loader. It
// keeps the init's credentials; the command, with fewer capabilities and
// no CAP_SYS_PTRACE, cannot trace it. Its threads count against the
// container's pids limit.

// reap is the reaper stage's main function.
func reap(a stageArgs) int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	ctl := os.NewFile(fdControl, "control")
	b := make([]byte, 1)
	if n, _ := ctl.Read(b); n != 1 || b[0] != 'g' {
		return ExitRunner // the supervisor went away
	}
	// pivot_root moves the root and cwd of every process at the old root:
	// ours must be there, not keep a host dir alive.
	if err := os.Chdir("/"); err != nil {
		return reaperFailed(fmt.Errorf("chdir /: %w", err))
	}
	pid, err := startInitChild(a, ctl)
	if err != nil {
		return reaperFailed(err)
	}
	// A full channel drops signals: the ticker reaps what a lost SIGCHLD
	// would have announced.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigs:
			if sig != unix.SIGCHLD {
				if reaperForwards(sig) {
					unix.Kill(pid, sig.(syscall.Signal))
				}
				continue
			}
		case <-tick.C:
		}
		if code, done := reapChildren(pid); done {
			return code
		}
	}
}

// startInitChild starts the init stage with our control, status and
// console descriptors, and lets go of them.
func startInitChild(a stageArgs, ctl *os.File) (int, error) {
	a.GotGo = true
	files := []*os.File{ctl, os.NewFile(fdStatus, "status")}
	if a.Console {
		files = append(files, os.NewFile(fdConsole, "console"))
	}
	argv := stageCommand(stageInit, a)
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: stageEnv(), ExtraFiles: files,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		// A session of its own, as the supervisor gives the init: a
		// terminal becomes its controlling one.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}}
	err := cmd.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("start the container init: %w", err)
	}
	// Never cmd.Wait: reapChildren collects it with the orphans.
	return cmd.Process.Pid, nil
}

// reaperFailed reports a failure to the supervisor like the init would.
func reaperFailed(err error) int {
	(&reporter{w: os.NewFile(fdStatus, "status")}).send(msg{Type: msgError, Code: ExitRunner, Msg: "container init: " + err.Error()})
	return ExitRunner
}

// reapChildren waits for every child that has ended; done is set once the
// command is among them, with its shell-style status.
func reapChildren(cmd int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return code, done
		}
		if pid != cmd {
			continue
		}
		done = true
		code = ws.ExitStatus()
		if ws.Signaled() {
			code = exitSignal + int(ws.Signal())
		}
	}
}

// reaperForwards tells which signals go on to the command: not the ones
// about the reaper itself (see forwardable), nor terminal stops.
func reaperForwards(s os.Signal) bool {
	switch s {
	case unix.SIGTTIN, unix.SIGTTOU:
		return false
	}
	return forwardable(s)
}
