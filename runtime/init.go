package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/userns"
	"github.com/unionfsd/unionfsd/runtime/seccomp"
)

// containerInit is the process that becomes the container's command.
type containerInit struct {
	a    stageArgs
	c    *Container
	spec *specs.Spec
	ctl  *os.File
	rep  *reporter
	cons *os.File
	caps *capPlan
	fifo int // O_PATH descriptor of exec.fifo (WaitStart)
	// started: after a handoff, exec.fifo's write end, held until the exec
	// closes it; a failure before is written there for `start` (handoff.go).
	started *os.File
	slave   *os.File
	ids     *ids
	path    string // resolved executable
	env     []string

	seccomp *seccomp.Filter // nil: no filter
}

// initContainer is the init stage's main function. It only returns on
// failure; on success the exec replaces it.
func initContainer(a stageArgs) int {
	// Capabilities, ids and the parent-death signal are per thread: do
	// everything on this one and exec from it.
	goruntime.LockOSThread()
	in := &containerInit{a: a, ctl: os.NewFile(fdControl, "control"), rep: &reporter{w: os.NewFile(fdStatus, "status")}, fifo: -1}
	for _, fd := range []int{fdControl, fdStatus, fdConsole} {
		unix.CloseOnExec(fd)
	}
	if a.Console {
		in.cons = os.NewFile(fdConsole, "console")
	}
	err := in.run()
	code := ExitCodeOf(err)
	in.rep.send(msg{Type: msgError, Code: code, Msg: err.Error()})
	if in.started != nil {
		(&reporter{w: in.started}).send(msg{Type: msgError, Code: code, Msg: err.Error()})
	}
	return code
}

// await reads the supervisor's next go-ahead byte.
func (in *containerInit) await(want byte) error {
	b := make([]byte, 1)
	if n, _ := in.ctl.Read(b); n != 1 || b[0] != want {
		return runnerErr("container init: the supervisor went away")
	}
	return nil
}

func (in *containerInit) run() error {
	// Under --init the reaper, our parent, read the go-ahead.
	if !in.a.GotGo {
		if err := in.await('g'); err != nil {
			return err
		}
	}
	if err := in.load(); err != nil {
		return err
	}
	steps := []func() error{in.setupNetwork, in.setupRootfs, in.setupConsole, in.resolveProcess, in.joinSessionKeyring}
	for _, step := range steps {
		if err := step(); err != nil {
			return withCode(err, ExitRunner)
		}
	}
	if err := in.waitForStart(); err != nil {
		return err
	}
	if !in.a.Handoff { // else the supervisor is gone (handoff.go)
		in.rep.send(msg{Type: msgExec})
		if err := in.await('x'); err != nil {
			return err
		}
	}
	return in.execProcess()
}

func (in *containerInit) load() error {
	c, err := loadDir(in.a.Dir)
	if err != nil {
		return runnerErr("load container %s: %v", in.a.Dir, err)
	}
	in.c = c
	if in.spec, err = c.loadConfig(); err != nil {
		return runnerErr("%v", err)
	}
	if in.spec.Process == nil || len(in.spec.Process.Args) == 0 {
		return runnerErr("config.json: process.args is empty: no command to run")
	}
	unix.Umask(0o022)
	in.caps = newCapPlan(in.spec.Process.Capabilities, in.rep.warn)
	if err := in.compileSeccomp(); err != nil {
		return err
	}
	if in.a.WaitStart {
		fd, err := unix.Open(c.Path(execFifoName), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return runnerErr("open %s: %v", c.Path(execFifoName), err)
		}
		in.fifo = fd
	}
	return nil
}

// setupNetwork brings up the loopback of a new network namespace.
func (in *containerInit) setupNetwork() error {
	if hasNamespace(in.spec, specs.NetworkNamespace) {
		if err := loopbackUp(); err != nil {
			in.rep.warn(fmt.Sprintf("loopback interface: %v", err))
		}
	}
	return nil
}

// setupRootfs does the mounts, pivot_root and hostname.
func (in *containerInit) setupRootfs() error {
	rootfs := in.c.rootfs(in.spec)
	if in.c.MkWorkdir {
		if err := makeWorkdir(rootfs, in.spec.Process.Cwd); err != nil {
			return err
		}
	}
	r := &rootfsSetup{rootfs: rootfs, bundle: in.c.Bundle, spec: in.spec, userns: userns.Inside(),
		union: in.c.Kind == KindImage, warn: in.rep.warn, beforePivot: in.beforePivot}
	if err := r.prepare(); err != nil {
		return err
	}
	if err := in.setHostname(); err != nil {
		return err
	}
	return r.finish()
}

// makeWorkdir creates the working dir in the rootfs, as docker does.
func makeWorkdir(rootfs, cwd string) error {
	p, err := securejoin.SecureJoin(rootfs, cwd)
	if err != nil {
		return fmt.Errorf("working dir %s: %w", cwd, err)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("working dir %s: %w", cwd, err)
	}
	return nil
}

func (in *containerInit) setHostname() error {
	if !hasNamespace(in.spec, specs.UTSNamespace) {
		return nil
	}
	if h := in.spec.Hostname; h != "" {
		if err := unix.Sethostname([]byte(h)); err != nil {
			return fmt.Errorf("set hostname %q: %w", h, err)
		}
	}
	if d := in.spec.Domainname; d != "" {
		if err := unix.Setdomainname([]byte(d)); err != nil {
			return fmt.Errorf("set domain name %q: %w", d, err)
		}
	}
	return nil
}

// setupConsole creates the container's pty and sends its master to the
// front end.
func (in *containerInit) setupConsole() error {
	if !in.spec.Process.Terminal {
		return nil
	}
	if in.cons == nil {
		return runnerErr("process.terminal is set but no console was set up: use a foreground run, or set terminal to false")
	}
	master, slave, err := openConsole()
	if err != nil {
		return err
	}
	defer master.Close()
	if sz := in.spec.Process.ConsoleSize; sz != nil {
		ws := &unix.Winsize{Row: uint16(sz.Height), Col: uint16(sz.Width)}
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
			slave.Close()
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	if err := sendFd(in.cons, master); err != nil {
		slave.Close()
		return err
	}
	in.cons.Close()
	in.slave = slave
	return nil
}

// resolveProcess finds the user's ids, the environment and the executable,
// so that errors show before `start`.
func (in *containerInit) resolveProcess() error {
	p := in.spec.Process
	var err error
	if in.c.User != "" {
		in.ids, err = resolveUser(in.c.User, "/etc/passwd", "/etc/group")
		if err != nil {
			return runnerErr("%v", err)
		}
	} else {
		in.ids = &ids{uid: p.User.UID, gid: p.User.GID, additional: p.User.AdditionalGids, home: homeOf(p.User.UID)}
	}
	in.env = processEnv(p.Env, in.ids.home)
	in.path, err = lookPath(p.Args[0], in.env, p.Cwd)
	return err
}

// homeOf is the home dir /etc/passwd gives uid, "/" without an entry.
func homeOf(uid uint32) string {
	users, _ := readPasswd("/etc/passwd")
	for _, u := range users {
		if u.uid == uid && u.home != "" {
			return u.home
		}
	}
	return "/"
}

// processEnv completes the environment: PATH and HOME when missing.
func processEnv(env []string, home string) []string {
	out := append([]string(nil), env...)
	has := func(k string) bool {
		for _, e := range out {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		out = append(out, defaultPath)
	}
	if !has("HOME") {
		out = append(out, "HOME="+home)
	}
	return out
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds name in the container's PATH. A name with a slash is
// taken as it is, but must exist, so that create (not start, whose caller
// has gone) reports it missing, as runc does.
func lookPath(name string, env []string, cwd string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(name, cwd)
	}
	for _, dir := range strings.Split(envValue(env, "PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if !strings.HasPrefix(p, "/") {
			p = cwd + "/" + p
		}
		st, err := os.Stat(p)
		if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &Error{Code: ExitNotFound, Err: fmt.Errorf("exec: %q: executable file not found in $PATH", name)}
}

// waitForStart reports "created" and blocks until `crun-lite start` opens
// exec.fifo for reading (create/start only).
func (in *containerInit) waitForStart() error {
	if in.fifo < 0 {
		return nil
	}
	in.rep.send(msg{Type: msgCreated})
	// The fifo was opened as O_PATH before pivot_root; this reopens it
	// through /proc, which blocks until a reader comes.
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(in.fifo), os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return runnerErr("wait for start: %v", err)
	}
	_, err = f.Write([]byte{0})
	if in.a.Handoff && err == nil {
		in.started = f // `start` reads on until our exec closes it
	} else {
		f.Close()
	}
	unix.Close(in.fifo)
	if err != nil {
		return runnerErr("wait for start: %v", err)
	}
	return nil
}

// execProcess drops privileges as the config says and execs the command.
func (in *containerInit) execProcess() error {
	p := in.spec.Process
	steps := []func() error{closeExtraFdsOnExec, in.useConsole, in.setRlimits, in.setOOMScore, in.seccompBeforeCaps, in.caps.dropBounding,
		in.setIDs, in.caps.apply, in.lockDown, in.chdir, in.seccompLast, in.runStartHooks}
	for _, step := range steps {
		if err := step(); err != nil {
			return withCode(err, ExitRunner)
		}
	}
	err := syscall.Exec(in.path, p.Args, in.env)
	code := ExitCannotRun
	if errors.Is(err, unix.ENOENT) {
		code = ExitNotFound
	}
	return &Error{Code: code, Err: fmt.Errorf("exec %s: %w", in.path, err)}
}

func (in *containerInit) useConsole() error {
	if in.slave == nil {
		return nil
	}
	err := useConsole(in.slave)
	in.slave.Close()
	return err
}

// rlimitNames maps OCI rlimit names to resources.
var rlimitNames = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

// setRlimits applies process.rlimits while we may still raise hard limits.
// syscall.Setrlimit (not a raw prlimit) so that Go does not put back its
// own NOFILE limit at exec.
func (in *containerInit) setRlimits() error {
	for _, r := range in.spec.Process.Rlimits {
		res, ok := rlimitNames[r.Type]
		if !ok {
			return fmt.Errorf("rlimit %s: unknown", r.Type)
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("set %s to %d:%d: %w", r.Type, r.Soft, r.Hard, err)
		}
	}
	return nil
}

func (in *containerInit) setOOMScore() error {
	if in.spec.Process.OOMScoreAdj == nil {
		return nil
	}
	v := strconv.Itoa(*in.spec.Process.OOMScoreAdj)
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(v), 0); err != nil {
		return fmt.Errorf("oom_score_adj %s: %w", v, err)
	}
	return nil
}

// setIDs changes groups, gid and uid of this thread only (raw system
// calls: Go's wrappers change every thread, and we exec from this one),
// keeping the permitted capabilities for caps.apply.
func (in *containerInit) setIDs() error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	if setgroupsAllowed() {
		gids := make([]int, len(in.ids.additional))
		for i, g := range in.ids.additional {
			gids[i] = int(g)
		}
		if err := unix.Setgroups(gids); err != nil {
			return fmt.Errorf("set supplementary groups %v: %w", in.ids.additional, err)
		}
	}
	gid, uid := uintptr(in.ids.gid), uintptr(in.ids.uid)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return idError("group", in.ids.gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return idError("user", in.ids.uid, e)
	}
	return nil
}

func idError(what string, id uint32, e syscall.Errno) error {
	if e == unix.EINVAL {
		return fmt.Errorf("%s id %d is not mapped in the container's user namespace", what, id)
	}
	return fmt.Errorf("set %s id %d: %w", what, id, e)
}

// setgroupsAllowed is false in a user namespace whose setgroups is "deny"
// (a single-id rootless mapping).
func setgroupsAllowed() bool {
	data, err := os.ReadFile("/proc/self/setgroups")
	return err != nil || !bytes.HasPrefix(data, []byte("deny"))
}

// lockDown sets the parent-death signal again (changing ids cleared it),
// no_new_privs and the umask.
func (in *containerInit) lockDown() error {
	// After a handoff our parent, the supervisor, left on purpose.
	if !in.a.Handoff {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("set parent-death signal: %w", err)
		}
	}
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

func (in *containerInit) chdir() error {
	cwd := in.spec.Process.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir to the working dir %s: %w", cwd, err)
	}
	return nil
}

// checkExecutable reports a command path that does not exist (exit 127)
// or is not an executable file (exit 126).
func checkExecutable(name, cwd string) error {
	p := name
	if !strings.HasPrefix(p, "/") {
		p = cwd + "/" + p
	}
	st, err := os.Stat(p)
	switch {
	case err != nil && errors.Is(err, os.ErrNotExist):
		return &Error{Code: ExitNotFound, Err: fmt.Errorf("exec: %q: no such file or directory", name)}
	case err != nil:
		return &Error{Code: ExitCannotRun, Err: fmt.Errorf("exec: %q: %w", name, unwrapPath(err))}
	case !st.Mode().IsRegular() || st.Mode()&0o111 == 0:
		return &Error{Code: ExitCannotRun, Err: fmt.Errorf("exec: %q: permission denied", name)}
	}
	return nil
}
