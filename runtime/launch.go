package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Stdio is what the container's process gets as stdin, stdout and stderr
// (or, with a terminal, what the terminal is relayed to).
type Stdio struct {
	In, Out, Err *os.File
}

func (s Stdio) orDefault() Stdio {
	if s.In == nil {
		s.In = os.Stdin
	}
	if s.Out == nil {
		s.Out = os.Stdout
	}
	if s.Err == nil {
		s.Err = os.Stderr
	}
	return s
}

// launchOpts says how the front end starts a created container.
type launchOpts struct {
	c      *Container
	spec   *specs.Spec
	stdio  Stdio
	detach bool // create: return once the init waits for start
	warn   func(string)
	// consoleSocket: the caller's --console-socket, connected; the pty
	// master goes there instead of to us.
	consoleSocket *os.File
	handoff       bool // the supervisor leaves once the init waits for start
	newKeyring    bool
}

// frontEnd is the user-facing process of one container (see the package doc).
type frontEnd struct {
	launchOpts
	cmd      *exec.Cmd
	ctl      *os.File // write end of the supervisor's control pipe (its lifeline)
	msgs     chan msg
	waitCh   chan error
	console  *os.File // our end of the console socket
	relay    *consoleRelay
	masterCh chan *os.File
	pid      int // the container init's, from msgStarted
}

// launch starts the supervisor of a created container and follows it: until
// the container ends (the exit status is returned) or, detached, until the
// container is created.
func launch(o launchOpts) (int, error) {
	o.stdio = o.stdio.orDefault()
	f := &frontEnd{launchOpts: o}
	var sigs chan os.Signal
	if !o.detach {
		// Catch signals before the supervisor exists, so none is lost.
		sigs = make(chan os.Signal, 32)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	defer f.closeAll()
	if err := f.start(); err != nil {
		return ExitCodeOf(err), err
	}
	return f.follow(sigs)
}

// hasNamespace tells whether the config asks for a new namespace of type t.
func hasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// debugEnv, when set, lets the supervisor's log output (go-fuse's) through.
const debugEnv = "CRUN_LITE_DEBUG"

// stageEnv is the environment of the stage processes: nothing of the
// user's leaks into the container's setup.
func stageEnv() []string {
	env := []string{defaultPath}
	if v := os.Getenv(debugEnv); v != "" {
		env = append(env, debugEnv+"="+v)
	}
	return env
}

// start starts the supervisor and hands it the go-ahead once its user
// namespace maps are written.
func (f *frontEnd) start() error {
	userns := hasNamespace(f.spec, specs.UserNamespace)
	var uidMap, gidMap []specs.LinuxIDMapping
	if userns {
		uidMap, gidMap = f.spec.Linux.UIDMappings, f.spec.Linux.GIDMappings
		if len(uidMap) == 0 || len(gidMap) == 0 {
			return runnerErr("user namespace without uidMappings and gidMappings in the config")
		}
	}
	remap := userns && needsHelper(uidMap, gidMap)
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return runnerErr("%v", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		return runnerErr("%v", err)
	}
	files := []*os.File{ctlR, stW}
	var consChild *os.File
	if f.spec.Process.Terminal && f.consoleSocket != nil {
		files = append(files, f.consoleSocket)
	} else if f.spec.Process.Terminal {
		if f.console, consChild, err = socketPair(); err != nil {
			return err
		}
		files = append(files, consChild)
	}
	f.cmd = f.supervisorCmd(files, userns, remap, uidMap, gidMap)
	err = f.cmd.Start()
	for _, file := range files {
		file.Close() // the supervisor has its copies
	}
	if err != nil {
		ctlW.Close()
		stR.Close()
		return startError(err, userns)
	}
	f.ctl = ctlW
	f.msgs = make(chan msg, 16)
	go readMsgs(stR, f.msgs)
	f.waitCh = make(chan error, 1)
	go func() { f.waitCh <- f.cmd.Wait() }()
	return f.handOver(remap, uidMap, gidMap)
}

// supervisorCmd is the command of the supervisor: ourselves, in a new
// mount namespace, and a user namespace when the config has one (with maps
// written by Go before the exec when we may write them ourselves).
func (f *frontEnd) supervisorCmd(files []*os.File, userns, remap bool, uidMap, gidMap []specs.LinuxIDMapping) *exec.Cmd {
	a := stageArgs{Dir: f.c.dir, Detach: f.detach, WaitStart: f.detach, Console: len(files) > 2, Remap: remap,
		Handoff: f.handoff, NewKeyring: f.newKeyring}
	argv := stageCommand(stageSupervise, a)
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: stageEnv(), ExtraFiles: files,
		Stdin: f.stdio.In, Stdout: f.stdio.Out, Stderr: f.stdio.Err}
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if f.detach {
		attr.Setsid = true
	} else {
		attr.Setpgid = true // terminal signals reach only us; we forward them
	}
	if userns {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		if !remap {
			attr.UidMappings, attr.GidMappings = toSysMaps(uidMap), toSysMaps(gidMap)
			attr.GidMappingsEnableSetgroups = os.Geteuid() == 0
		}
	}
	cmd.SysProcAttr = attr
	return cmd
}

// handOver writes the maps with newuidmap when needed, lets the supervisor
// go on, and starts waiting for the pty master of a terminal.
func (f *frontEnd) handOver(remap bool, uidMap, gidMap []specs.LinuxIDMapping) error {
	if remap {
		if err := writeMapsWithHelpers(f.cmd.Process.Pid, uidMap, gidMap); err != nil {
			f.cmd.Process.Kill()
			<-f.waitCh
			return runnerErr("user namespace: %v", err)
		}
	}
	if _, err := f.ctl.Write([]byte("g")); err != nil {
		return runnerErr("start supervisor: %v", err)
	}
	if f.console != nil {
		f.masterCh = make(chan *os.File, 1)
		go func() {
			if m, err := recvFd(f.console); err == nil {
				f.masterCh <- m
			}
		}()
	}
	return nil
}

// startError explains why the supervisor could not even start.
func startError(err error, userns bool) error {
	if userns && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EUSERS)) {
		return runnerErr("cannot create a user namespace: %v (are user namespaces enabled? see /proc/sys/user/max_user_namespaces)", errnoOf(err))
	}
	return runnerErr("start supervisor: %v", err)
}

// errnoOf strips "fork/exec PATH:" and the like from a system error.
func errnoOf(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// follow handles the supervisor's messages and forwards signals until the
// supervisor exits (or, detached, reports the container created).
func (f *frontEnd) follow(sigs chan os.Signal) (int, error) {
	var last lastWord
	for {
		select {
		case m, ok := <-f.msgs:
			if !ok {
				f.msgs = nil
				continue
			}
			if m.Type == msgCreated && f.detach {
				return 0, nil // the supervisor stays with the container
			}
			f.take(&last, m)
		case master := <-f.masterCh:
			f.relay = startRelay(master, f.stdio.In, f.stdio.Out)
		case s := <-sigs:
			if forwardable(s) && !(f.relay != nil && s == unix.SIGWINCH) {
				f.cmd.Process.Signal(s)
			}
		case err := <-f.waitCh:
			for m := range orClosed(f.msgs) {
				f.take(&last, m)
			}
			return f.result(last.failure, last.exit, err)
		}
	}
}

// lastWord is what the supervisor said about how the container ended.
type lastWord struct{ failure, exit *msg }

// take handles one supervisor message: warnings are shown, the error and
// exit reports kept.
func (f *frontEnd) take(last *lastWord, m msg) {
	switch m.Type {
	case msgWarn:
		f.warn(m.Msg)
	case msgStarted:
		f.pid = m.Pid
	case msgRunning:
		f.poststart()
	case msgError:
		last.failure = &m
	case msgExit:
		last.exit = &m
	}
}

// result turns the supervisor's last word into an exit status.
func (f *frontEnd) result(failure, exit *msg, waitErr error) (int, error) {
	if f.relay != nil {
		f.relay.finish()
	}
	switch {
	case failure != nil:
		return failure.Code, &Error{Code: failure.Code, Err: errors.New(failure.Msg)}
	case exit != nil:
		return exit.Code, nil
	}
	return ExitRunner, runnerErr("container supervisor died unexpectedly: %v", waitErr)
}

func (f *frontEnd) closeAll() {
	if f.ctl != nil {
		f.ctl.Close()
	}
	if f.console != nil {
		f.console.Close()
	}
}

// forwardable tells which signals are passed on to the container: all but
// those about our own process (child exits, broken pipes, Go's preemption
// signal).
func forwardable(s os.Signal) bool {
	switch s {
	case unix.SIGCHLD, unix.SIGPIPE, unix.SIGURG, unix.SIGKILL, unix.SIGSTOP:
		return false
	}
	return true
}
