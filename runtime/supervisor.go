package runtime

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/unionfs"
)

// supervisor is the process that owns a container's mounts and its init
// (see the package doc). It runs in a mount namespace of its own.
type supervisor struct {
	a      stageArgs
	c      *Container
	spec   *specs.Spec
	rep    *reporter
	ctl    *os.File
	cons   *os.File
	sigs   chan os.Signal
	server *fuse.Server
	cg     *cgroups
	net    *containerNet // nil unless --network bridge

	init    *exec.Cmd
	syncW   *os.File // "g": set up; "x": exec
	initMsg chan msg
	waitCh  chan error
	execing bool // "x" sent: the init's status pipe closing means it executed
	// handedOff: the init waits for start on its own; we leave.
	handedOff bool
}

// supervise is the supervisor stage's main function.
func supervise(a stageArgs) int {
	s := &supervisor{a: a, ctl: os.NewFile(fdControl, "control"), rep: &reporter{w: os.NewFile(fdStatus, "status")}}
	if a.Console {
		s.cons = os.NewFile(fdConsole, "console")
	}
	s.sigs = make(chan os.Signal, 32)
	signal.Notify(s.sigs)
	// Our stderr is the container's: FUSE server chatter (interrupted
	// requests and the like) must not end up in the user's output.
	if os.Getenv(debugEnv) == "" {
		log.SetOutput(io.Discard)
	}
	if !a.Mapped && !s.awaitGo() {
		return ExitRunner
	}
	// Nothing of ours may leak into the container init beyond what it is given.
	for _, fd := range []int{fdControl, fdStatus, fdConsole} {
		unix.CloseOnExec(fd)
	}
	code, err := s.run()
	if err != nil {
		s.rep.send(msg{Type: msgError, Code: ExitCodeOf(err), Msg: err.Error()})
		return ExitCodeOf(err)
	}
	s.rep.send(msg{Type: msgExit, Code: code})
	return 0
}

// awaitGo waits for the front end's go-ahead (our id maps are written).
func (s *supervisor) awaitGo() bool {
	b := make([]byte, 1)
	n, _ := s.ctl.Read(b)
	return n == 1
}

// run sets the container up, starts and follows its init and tears
// everything down again. It returns the container's exit status.
func (s *supervisor) run() (int, error) {
	if err := s.load(); err != nil {
		return 0, err
	}
	err := s.setup()
	if err == nil {
		err = s.startInit()
	}
	if err != nil {
		s.recordFailure(err)
		s.teardown(nil)
		return 0, err
	}
	code, err := s.follow()
	if errors.Is(err, errHandedOff) {
		return 0, nil // the container runs on without us
	}
	exit := code
	if err != nil {
		exit = ExitCodeOf(err)
		s.recordFailure(err)
	}
	s.teardown(&exit)
	return code, err
}

func (s *supervisor) load() error {
	c, err := loadDir(s.a.Dir)
	if err != nil {
		return runnerErr("load container %s: %v", s.a.Dir, err)
	}
	s.c = c
	if s.spec, err = c.loadConfig(); err != nil {
		return runnerErr("%v", err)
	}
	start, _, _ := procStat(os.Getpid())
	return c.updateState(func(st *State) {
		st.Status, st.Supervisor, st.SupStart = specs.StateCreating, os.Getpid(), start
	})
}

// setup prepares what the init needs before it starts: private mounts,
// the union and the cgroups.
func (s *supervisor) setup() error {
	// Our namespace is a copy of the host's; without this, the union mount
	// would propagate back to the host through shared mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return runnerErr("make mounts private: %v", err)
	}
	if s.c.Kind == KindImage {
		var err error
		if s.net, err = prepareNetwork(s.c); err != nil {
			return err
		}
		if err := s.mountUnion(); err != nil {
			return err
		}
	}
	var err error
	s.cg, err = setupCgroups(s.c, s.spec)
	return err
}

// mountUnion mounts the image layers with the container's upper dir at
// merged/ and serves it from goroutines of this process.
func (s *supervisor) mountUnion() error {
	merged := s.c.Path(mergedDir)
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return runnerErr("create %s: %v", merged, err)
	}
	cfg := unionfs.DefaultConfig()
	cfg.Lowers = append([]string{s.c.Path(initDir)}, s.c.Lowers...)
	cfg.Upper = s.c.Path(upperDir)
	cfg.Work = s.c.Path(workDir)
	// Other users of the container (-u) must get through FUSE's
	// mounter-only check; permissions are checked by the kernel.
	cfg.AllowOther = true
	// chown -R, chmod -R and friends in a container copy no data; commit
	// and export resolve the metacopy entries to full files.
	cfg.Metacopy = true
	cfg.FsName = "crun-lite:" + s.c.Name
	server, err := unionfs.Mount(merged, cfg)
	if err != nil {
		return runnerErr("mount the container's root filesystem: %v", err)
	}
	s.server = server
	return nil
}

// namespaceFlags are the clone flags of the config's namespaces (the user
// namespace is ours already, and a mount namespace is always made).
func namespaceFlags(spec *specs.Spec) (uintptr, error) {
	flags := uintptr(unix.CLONE_NEWNS)
	if spec.Linux == nil {
		return flags, nil
	}
	kinds := map[specs.LinuxNamespaceType]uintptr{
		specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
		specs.IPCNamespace: unix.CLONE_NEWIPC, specs.UTSNamespace: unix.CLONE_NEWUTS,
		specs.MountNamespace: unix.CLONE_NEWNS, specs.CgroupNamespace: unix.CLONE_NEWCGROUP,
		specs.UserNamespace: 0,
	}
	for _, ns := range spec.Linux.Namespaces {
		f, ok := kinds[ns.Type]
		if !ok {
			return 0, runnerErr("namespace type %q is not supported", ns.Type)
		}
		if ns.Path != "" {
			if !joinable[ns.Type] {
				return 0, runnerErr("joining an existing %s namespace (%s) is not supported", ns.Type, ns.Path)
			}
			continue // joined by startInNamespaces, not created
		}
		flags |= f
	}
	return flags, nil
}

// startInit starts the container init in its new namespaces, puts it in
// its cgroups and lets it go on.
func (s *supervisor) startInit() error {
	flags, err := namespaceFlags(s.spec)
	if err != nil {
		return err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return runnerErr("%v", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		return runnerErr("%v", err)
	}
	files := []*os.File{syncR, stW}
	if s.cons != nil {
		files = append(files, s.cons)
	}
	a := stageArgs{Dir: s.a.Dir, WaitStart: s.a.WaitStart, Console: s.cons != nil, Handoff: s.a.Handoff, NewKeyring: s.a.NewKeyring}
	stage := stageInit
	if s.c.Init {
		stage = stageReap // which starts the init below itself
	}
	argv := stageCommand(stage, a)
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: stageEnv(), ExtraFiles: files,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if s.c.Init {
		// The reaper stays the container's PID 1 as our own binary: run it
		// from a sealed copy, so that a container process that gets at
		// /proc/1/exe (one with all the reaper's capabilities) finds no
		// host file to write (runc's CVE-2019-5736).
		self, err := sealedSelf()
		if err != nil {
			return runnerErr("start the reaper: %v", err)
		}
		defer self.Close()
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", self.Fd())
	}
	// The parent-death signal is tied to the thread that forks; this is the
	// main goroutine, locked to the main thread for all of our life.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, Pdeathsig: syscall.SIGKILL}
	if s.a.Handoff {
		// The init outlives us (see handoff.go).
		cmd.SysProcAttr.Pdeathsig = 0
	}
	err = startInNamespaces(s.spec, cmd)
	syncR.Close()
	stW.Close()
	if s.cons != nil {
		s.cons.Close()
	}
	if err != nil {
		syncW.Close()
		stR.Close()
		return runnerErr("start the container init: %v", err)
	}
	s.init, s.syncW = cmd, syncW
	s.initMsg = make(chan msg, 16)
	go readMsgs(stR, s.initMsg)
	s.waitCh = make(chan error, 1)
	go func() { s.waitCh <- cmd.Wait() }()
	return s.letInitGo()
}

// letInitGo moves the init into its cgroups, records it and lets it set up.
func (s *supervisor) letInitGo() error {
	pid := s.init.Process.Pid
	if err := s.cg.add(pid); err != nil {
		s.killInit()
		return err
	}
	if err := s.net.attach(pid); err != nil {
		s.killInit()
		return err
	}
	start, _, _ := procStat(pid)
	if err := s.c.updateState(func(st *State) { st.Pid, st.PidStart = pid, start }); err != nil {
		s.killInit()
		return runnerErr("%v", err)
	}
	s.rep.send(msg{Type: msgStarted, Pid: pid})
	if _, err := s.syncW.Write([]byte("g")); err != nil {
		s.killInit()
		return runnerErr("start the container init: %v", err)
	}
	return nil
}

// killInit kills the init and waits for it.
func (s *supervisor) killInit() {
	s.init.Process.Kill()
	<-s.waitCh
	s.waitCh = nil
}

// follow relays the init's messages and our signals until the init exits.
func (s *supervisor) follow() (int, error) {
	lifeline := make(chan struct{})
	if !s.a.Detach {
		go func() { io.Copy(io.Discard, s.ctl); close(lifeline) }()
	}
	var failure *msg
	for {
		select {
		case m, ok := <-s.initMsg:
			if !ok {
				s.initMsg = nil
				if failure == nil {
					s.execDone()
				}
				continue
			}
			if f := s.handleInitMsg(m); f != nil {
				failure = f
			}
			if s.handedOff {
				return 0, errHandedOff
			}
		case sig := <-s.sigs:
			if forwardable(sig) {
				s.init.Process.Signal(sig)
			}
		case <-lifeline:
			// The front end is gone: nobody will wait for this container.
			s.init.Process.Kill()
			lifeline = nil
		case err := <-s.waitCh:
			s.waitCh = nil
			for m := range orClosed(s.initMsg) {
				if f := s.handleInitMsg(m); f != nil {
					failure = f
				}
			}
			if failure != nil {
				return 0, &Error{Code: failure.Code, Err: errors.New(failure.Msg)}
			}
			s.execDone()
			return exitStatus(s.init.ProcessState, err), nil
		}
	}
}

// handleInitMsg acts on one message of the init; it returns the message
// when it reports a failure.
func (s *supervisor) handleInitMsg(m msg) *msg {
	switch m.Type {
	case msgWarn:
		s.rep.send(m)
	case msgError:
		return &m
	case msgCreated:
		s.c.updateState(func(st *State) { st.Status = specs.StateCreated })
		if s.a.Handoff {
			if err := s.handOff(); err != nil {
				s.init.Process.Kill()
				return &msg{Type: msgError, Code: ExitCodeOf(err), Msg: err.Error()}
			}
		}
		s.rep.send(m)
		if s.a.Detach {
			detachStdio()
		}
	case msgExec:
		if err := s.cg.setLate(); err != nil {
			s.init.Process.Kill()
			return &msg{Type: msgError, Code: ExitCodeOf(err), Msg: err.Error()}
		}
		s.execing = true // running once the exec closes the status pipe (execDone)
		s.syncW.Write([]byte("x"))
	case msgHooks:
		if err := s.runCreateHooks(); err != nil {
			s.init.Process.Kill()
			return &msg{Type: msgError, Code: ExitCodeOf(err), Msg: err.Error()}
		}
	}
	return nil
}

// orClosed returns ch, or a closed channel when ch is nil (already drained).
func orClosed(ch chan msg) chan msg {
	if ch == nil {
		ch = make(chan msg)
		close(ch)
	}
	return ch
}

// exitStatus is the shell-style status of a finished process.
func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		return ExitRunner
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignal + int(ws.Signal())
	}
	return ps.ExitCode()
}

// detachStdio lets go of the caller's stdin, stdout and stderr, which only
// the container's process should hold once `create` returns.
func detachStdio() {
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd <= 2; fd++ {
		unix.Dup3(int(null.Fd()), fd, 0)
	}
	null.Close()
}

// teardown records the end and releases cgroups and the union; --rm
// containers are deleted. exit is nil when the init never ran.
func (s *supervisor) teardown(exit *int) {
	if s.c == nil {
		return
	}
	if s.waitCh != nil {
		s.killInit()
	}
	s.c.updateState(func(st *State) {
		st.Status, st.ExitCode, st.Finished = specs.StateStopped, exit, time.Now().UTC()
	})
	if s.cg != nil {
		s.cg.destroy()
	}
	s.net.teardown()
	s.unmountUnion()
	if s.c.Remove {
		os.RemoveAll(s.c.dir)
	}
}

// unmountUnion stops the FUSE server. The container's copy of the mount
// went with its namespace; if the kernel still holds the connection after
// a few seconds we detach and leave, and our exit ends the rest.
func (s *supervisor) unmountUnion() {
	if s.server == nil {
		return
	}
	done := make(chan struct{})
	go func() { s.server.Unmount(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		unix.Unmount(s.c.Path(mergedDir), unix.MNT_DETACH)
	}
	s.server = nil
}
