package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// execStage is the exec stage's main function (step 3 in execfork.go). It
// only returns on failure; on success the exec replaces it.
func execStage(a stageArgs) int {
	// Before anything else: the container can see us in its pid namespace.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// The mount namespace, ids, capabilities and no_new_privs are set on
	// this thread only, and the command is executed from it.
	goruntime.LockOSThread()
	fds := a.Exec
	if fds == nil {
		fmt.Fprintln(os.Stderr, "crun-lite: exec stage without descriptors")
		return ExitRunner
	}
	for _, fd := range []int{fds.Ctl, fds.Status, fds.Console, fds.Mnt, fds.Root} {
		if fd >= 0 {
			unix.CloseOnExec(fd)
		}
	}
	rep := &reporter{w: os.NewFile(uintptr(fds.Status), "status")}
	err := enterRoot(fds.Root)
	if err == nil {
		err = runExecStage(fds, rep)
	}
	code := ExitCodeOf(err)
	rep.send(msg{Type: msgError, Code: code, Msg: err.Error()})
	return code
}

func runExecStage(fds *execFds, rep *reporter) error {
	var cfg execConfig
	ctl := os.NewFile(uintptr(fds.Ctl), "control")
	// The front end sends the config once we are in the cgroups; EOF
	// means it gave up.
	if err := json.NewDecoder(ctl).Decode(&cfg); err != nil || cfg.Process == nil {
		return runnerErr("exec: no config from crun-lite exec")
	}
	ctl.Close()
	if fds.Mnt >= 0 {
		if err := joinMountNamespace(fds.Mnt); err != nil {
			return runnerErr("exec: %v", err)
		}
	}
	// Our own session: the container's processes get no signals meant for
	// the caller's terminal, and a terminal can become ours.
	if _, err := unix.Setsid(); err != nil {
		return runnerErr("exec: setsid: %v", err)
	}
	in, err := prepareExec(&cfg, fds, rep)
	if err != nil {
		return withCode(err, ExitRunner)
	}
	steps := []func() error{unblockSignals, in.useConsole, in.setRlimits, in.setOOMScore, in.seccompBeforeCaps,
		in.caps.dropBounding, in.setIDs, in.caps.apply, in.execLockDown, in.chdir, in.seccompLast}
	for _, step := range steps {
		if err := step(); err != nil {
			return withCode(err, ExitRunner)
		}
	}
	rep.send(msg{Type: msgExec})
	err = syscall.Exec(in.path, cfg.Process.Args, in.env)
	code := ExitCannotRun
	if errors.Is(err, unix.ENOENT) {
		code = ExitNotFound
	}
	return &Error{Code: code, Err: fmt.Errorf("exec %s: %w", in.path, err)}
}

// enterRoot makes the container's root dir the root and working dir of
// all our threads (they share them until joinMountNamespace): a
// dynamically linked stage started in the host's mount namespace keeps no
// thread at the host's root longer than this.
func enterRoot(fd int) error {
	if fd < 0 {
		return nil
	}
	if err := unix.Fchdir(fd); err != nil {
		return runnerErr("exec: enter the container's root: %v", err)
	}
	if err := unix.Chroot("."); err != nil {
		return runnerErr("exec: enter the container's root: %v", err)
	}
	unix.Close(fd)
	return nil
}

// joinMountNamespace moves this thread into the container's mount
// namespace: unsharing the fs_struct first makes it ours alone, which
// setns requires; root and working dir become the namespace's root.
func joinMountNamespace(fd int) error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare the fs attributes: %w", err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("join the container's mount namespace: %w", err)
	}
	unix.Close(fd)
	return nil
}

// prepareExec resolves user, environment, executable and terminal inside
// the container, into the containerInit whose privilege steps the exec
// shares.
func prepareExec(cfg *execConfig, fds *execFds, rep *reporter) (*containerInit, error) {
	p := cfg.Process
	in := &containerInit{spec: &specs.Spec{Process: p, Linux: &specs.Linux{Seccomp: cfg.Seccomp}}, rep: rep, fifo: -1}
	unix.Umask(0o022) // as the init's, not crun-lite's caller's
	in.caps = newCapPlan(p.Capabilities, rep.warn)
	if err := in.compileSeccomp(); err != nil {
		return nil, err
	}
	var err error
	if cfg.User != "" {
		if in.ids, err = resolveUser(cfg.User, "/etc/passwd", "/etc/group"); err != nil {
			return nil, err
		}
		in.ids.additional = append(in.ids.additional, p.User.AdditionalGids...)
	} else {
		in.ids = &ids{uid: p.User.UID, gid: p.User.GID, additional: p.User.AdditionalGids, home: homeOf(p.User.UID)}
	}
	in.env = processEnv(p.Env, in.ids.home)
	if in.path, err = lookPath(p.Args[0], in.env, p.Cwd); err != nil {
		return nil, err
	}
	if p.Terminal {
		if fds.Console < 0 {
			return nil, runnerErr("exec: a terminal without a console socket")
		}
		cons := os.NewFile(uintptr(fds.Console), "console")
		master, slave, err := openPty()
		if err != nil {
			return nil, err
		}
		if sz := p.ConsoleSize; sz != nil {
			ws := &unix.Winsize{Row: uint16(sz.Height), Col: uint16(sz.Width)}
			if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, ws); err != nil {
				master.Close()
				slave.Close()
				return nil, fmt.Errorf("process.consoleSize: %w", err)
			}
		}
		err = sendFd(cons, master)
		master.Close()
		cons.Close()
		if err != nil {
			slave.Close()
			return nil, err
		}
		in.slave = slave
	}
	return in, nil
}

// openPty creates a pty in the container's /dev/pts (the container's
// /dev/console stays its init's).
func openPty() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER opens the slave from the master, not by a path the
	// container could have replaced.
	fd, _, e := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if e != 0 {
		err = e
		master.Close()
		return nil, nil, fmt.Errorf("open the pty slave: %w", err)
	}
	return master, os.NewFile(uintptr(fd), "pty-slave"), nil
}

// execLockDown sets no_new_privs and the umask. Unlike the init, an exec'd
// process gets no parent-death signal: a detached one outlives crun-lite.
func (in *containerInit) execLockDown() error {
	p := in.spec.Process
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}
	return nil
}
