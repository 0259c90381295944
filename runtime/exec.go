package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// `crun-lite exec` starts one more process in a running container, as
// `runc exec` does: in every namespace and cgroup of the container's init,
// with the container's process settings (capabilities, no_new_privs,
// rlimits, seccomp) or those of a runtime-spec Process file, and the
// command, environment, working dir and user given. How the process gets
// into the namespaces is explained in execfork.go.

// ExecOptions are the flags of `crun-lite exec`.
type ExecOptions struct {
	// Process replaces the container's process settings (--process FILE);
	// nil: the container's config.json process with the flags below.
	Process *specs.Process
	Args    []string // COMMAND [ARG...]; may be empty with Process
	Env     []string // K=V (K alone: the caller's value), added to the process's
	Cwd     string
	User    string // UID[:GID] or USER[:GROUP], resolved in the container
	// AdditionalGids are added to the user's supplementary groups.
	AdditionalGids []uint32
	Caps           []string
	// NoNewPrivs sets no_new_privs (it is never cleared).
	NoNewPrivs bool
	TTY        bool
	// Detach returns once the command runs; its pid goes to PidFile.
	Detach        bool
	PidFile       string
	ConsoleSocket string // send the pty master to this unix socket
	PreserveFDs   int    // fds 3 .. 3+N-1 are passed on
	Stdio         Stdio
	Warn          func(string)
}

// execConfig is what the front end tells the exec stage, as JSON on its
// control pipe.
type execConfig struct {
	Process *specs.Process      `json:"process"`
	User    string              `json:"user,omitempty"` // "": Process.User as it is
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
}

// execFds are the descriptors of the exec stage (numbers vary with
// --preserve-fds); Console is -1 without a terminal.
type execFds struct {
	Ctl, Status, Console int
	// Mnt and Root (-1: none) are the init's mount namespace and root dir
	// for a dynamically linked binary, which joins the mount namespace
	// only once it runs (see execfork.go).
	Mnt, Root int
}

// Exec runs a command in the running container ref. Not detached, it
// returns the command's exit status (128+N after signal N); errors before
// the command runs have the codes of Run.
func Exec(root, ref string, o ExecOptions) (int, error) {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	o.Stdio = o.Stdio.orDefault()
	if err := o.check(); err != nil {
		return ExitRunner, err
	}
	c, err := Find(root, ref)
	if err != nil {
		return ExitRunner, runnerErr("%v", err)
	}
	st, err := c.Status()
	if err != nil {
		return ExitRunner, runnerErr("%v", err)
	}
	if st.Status != specs.StateRunning && st.Status != specs.StateCreated {
		return ExitRunner, runnerErr("container %s is not running (%s)", c.Name, st.Status)
	}
	spec, err := c.loadConfig()
	if err != nil {
		return ExitRunner, runnerErr("%v", err)
	}
	cfg, err := execConfigOf(c, spec, o)
	if err != nil {
		return ExitRunner, err
	}
	static, err := selfIsStatic()
	if err != nil {
		return ExitRunner, runnerErr("exec: %v", err)
	}
	if !static && (hasBoundingCap(spec.Process, "CAP_SYS_PTRACE") || hasBoundingCap(cfg.Process, "CAP_SYS_PTRACE")) {
		return ExitRunner, runnerErr("container %s may hold CAP_SYS_PTRACE, which could reach the host's filesystem through a dynamically linked crun-lite's exec stage: use a static crun-lite (CGO_ENABLED=0 go build)", c.Name)
	}
	t, err := openTarget(c, st)
	if err != nil {
		return ExitRunner, err
	}
	defer t.close()
	x := &execRun{o: o, c: c, cfg: cfg, t: t, static: static}
	return x.run()
}

// check rejects flag combinations that cannot work.
func (o *ExecOptions) check() error {
	if o.Detach && o.TTY && o.ConsoleSocket == "" {
		return runnerErr("-d with -t needs --console-socket: nobody would relay the terminal")
	}
	if o.ConsoleSocket != "" && !o.TTY && (o.Process == nil || !o.Process.Terminal) {
		return runnerErr("--console-socket needs -t (or process.terminal)")
	}
	if o.PreserveFDs < 0 {
		return runnerErr("--preserve-fds %d: must not be negative", o.PreserveFDs)
	}
	for fd := 3; fd < 3+o.PreserveFDs; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return runnerErr("--preserve-fds %d: descriptor %d is not open", o.PreserveFDs, fd)
		}
	}
	return nil
}

// execConfigOf is the process the stage runs: the container's (or
// --process) with the flags applied, as runc exec builds it.
func execConfigOf(c *Container, spec *specs.Spec, o ExecOptions) (*execConfig, error) {
	var p specs.Process
	switch {
	case o.Process != nil:
		p = *o.Process
	case spec.Process != nil:
		p = *spec.Process
		p.Args, p.Terminal, p.ConsoleSize = nil, false, nil
	}
	if len(o.Args) > 0 {
		p.Args = o.Args
	}
	if len(p.Args) == 0 {
		return nil, runnerErr("no command given: want ID COMMAND [ARG...] or --process FILE with args")
	}
	env, err := mergeEnv(p.Env, o.Env)
	if err != nil {
		return nil, err
	}
	p.Env = env
	if o.Cwd != "" {
		p.Cwd = o.Cwd
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if !filepath.IsAbs(p.Cwd) {
		return nil, runnerErr("working dir %q: must be absolute", p.Cwd)
	}
	p.User.AdditionalGids = append(append([]uint32(nil), p.User.AdditionalGids...), o.AdditionalGids...)
	p.Terminal = p.Terminal || o.TTY
	p.NoNewPrivileges = p.NoNewPrivileges || o.NoNewPrivs
	if err := addCaps(&p, o.Caps); err != nil {
		return nil, err
	}
	// An exec's pty is made by the stage, which gives it consoleSize.
	size := p.ConsoleSize
	p.ConsoleSize = nil
	if f, why := checkProcess(&specs.Spec{Process: &p}); f != "" {
		return nil, runnerErr("%s: %s", f, why)
	}
	p.ConsoleSize = size
	cfg := &execConfig{Process: &p}
	switch {
	case o.User != "":
		if err := checkUserSyntax(o.User); err != nil {
			return nil, runnerErr("--user: %v", err)
		}
		cfg.User = o.User
	case o.Process == nil:
		cfg.User = c.User // an image container's -u or image User
	}
	if spec.Linux != nil {
		cfg.Seccomp = spec.Linux.Seccomp
	}
	return cfg, nil
}

// mergeEnv adds the K=V of flags to env; a K already there gets the new
// value in its place (a second entry would be ignored by getenv).
func mergeEnv(env, flags []string) ([]string, error) {
	out := append([]string(nil), env...)
	for _, e := range flags {
		k, v, ok := strings.Cut(e, "=")
		if k == "" {
			return nil, runnerErr("--env %q: want KEY=VALUE", e)
		}
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		replaced := false
		for i, old := range out {
			if strings.HasPrefix(old, k+"=") {
				out[i], replaced = k+"="+v, true
			}
		}
		if !replaced {
			out = append(out, k+"="+v)
		}
	}
	return out, nil
}

// addCaps adds --cap capabilities to the bounding, effective and
// permitted sets (and ambient when inheritable has them), as runc does.
func addCaps(p *specs.Process, caps []string) error {
	if len(caps) == 0 {
		return nil
	}
	var c specs.LinuxCapabilities
	if p.Capabilities != nil {
		c = *p.Capabilities
	}
	add := func(set []string, name string) []string {
		out := append([]string(nil), set...)
		for _, s := range out {
			if strings.EqualFold(s, name) {
				return out
			}
		}
		return append(out, name)
	}
	for _, name := range caps {
		n := strings.ToUpper(name)
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if _, ok := capNames[n]; !ok {
			return runnerErr("--cap %s: unknown capability", name)
		}
		c.Bounding, c.Effective, c.Permitted = add(c.Bounding, n), add(c.Effective, n), add(c.Permitted, n)
		for _, i := range c.Inheritable {
			if strings.EqualFold(i, n) {
				c.Ambient = add(c.Ambient, n)
			}
		}
	}
	p.Capabilities = &c
	return nil
}

// hasBoundingCap tells whether p's bounding set has capability name.
func hasBoundingCap(p *specs.Process, name string) bool {
	if p == nil || p.Capabilities == nil {
		return false
	}
	for _, c := range p.Capabilities.Bounding {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

// execTarget is the container init as the fork joins it.
type execTarget struct {
	pid      int
	pidfd    *os.File
	mnt      *os.File // its mount namespace and root dir (O_PATH), for
	root     *os.File // a stage that joins the mount namespace itself
	flags    uintptr  // setns flags of the namespaces that differ from ours
	joinUser bool
	cgroups  []string // cgroup.procs files of its cgroups that are not ours
	rootless bool
}

// nsKinds are the namespaces joined by the fork (mnt is the stage's).
var nsKinds = []struct {
	name string
	flag uintptr
}{
	{"user", unix.CLONE_NEWUSER}, {"pid", unix.CLONE_NEWPID}, {"net", unix.CLONE_NEWNET},
	{"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}, {"cgroup", unix.CLONE_NEWCGROUP},
	{"time", unix.CLONE_NEWTIME},
}

// openTarget pins the container's init with a pidfd and finds what to
// join. The init must be the process state.json names (its start time) when
// the pidfd is taken and still alive once the namespace files are open, so
// that a reused pid never leads into another process's namespaces.
func openTarget(c *Container, st *State) (*execTarget, error) {
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return nil, runnerErr("container %s: open its init (pid %d): %v", c.Name, st.Pid, err)
	}
	t := &execTarget{pid: st.Pid, pidfd: os.NewFile(uintptr(fd), "pidfd"), rootless: c.Rootless}
	fail := func(err error) (*execTarget, error) { t.close(); return nil, err }
	if !alive(st.Pid, st.PidStart) {
		return fail(runnerErr("container %s is not running (its init is gone)", c.Name))
	}
	for _, k := range nsKinds {
		same, err := sameNamespace(st.Pid, k.name)
		if errors.Is(err, os.ErrNotExist) && (k.name == "time" || k.name == "cgroup") {
			continue // a kernel without them
		}
		if err != nil {
			return fail(runnerErr("container %s: %v", c.Name, err))
		}
		if !same {
			t.flags |= k.flag
			t.joinUser = t.joinUser || k.name == "user"
		}
	}
	mnt := fmt.Sprintf("/proc/%d/ns/mnt", st.Pid)
	if t.mnt, err = os.Open(mnt); err != nil {
		return fail(runnerErr("container %s: %v", c.Name, err))
	}
	// The magic link itself: nothing below the container's root is looked
	// up from here.
	root := fmt.Sprintf("/proc/%d/root", st.Pid)
	if t.root, err = os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fail(runnerErr("container %s: %v", c.Name, err))
	}
	if t.cgroups, err = cgroupTargets(st.Pid); err != nil {
		return fail(runnerErr("container %s: %v", c.Name, err))
	}
	if err := unix.PidfdSendSignal(int(t.pidfd.Fd()), 0, nil, 0); err != nil {
		return fail(runnerErr("container %s is not running (its init is gone)", c.Name))
	}
	return t, nil
}

func (t *execTarget) close() {
	t.pidfd.Close()
	for _, f := range []*os.File{t.mnt, t.root} {
		if f != nil {
			f.Close()
		}
	}
}

// sameNamespace tells whether pid is in our namespace of kind name.
func sameNamespace(pid int, name string) (bool, error) {
	var theirs, ours unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, name), &theirs); err != nil {
		return false, &os.PathError{Op: "stat", Path: fmt.Sprintf("/proc/%d/ns/%s", pid, name), Err: err}
	}
	if err := unix.Stat("/proc/self/ns/"+name, &ours); err != nil {
		return false, &os.PathError{Op: "stat", Path: "/proc/self/ns/" + name, Err: err}
	}
	return theirs.Dev == ours.Dev && theirs.Ino == ours.Ino, nil
}

// cgroupTargets lists the cgroup.procs files of pid's cgroups in the
// hierarchies where we are in another cgroup. The paths come from the
// kernel (/proc/PID/cgroup, read from the host's cgroup namespace) and are
// joined to the host's mount points of the hierarchies.
func cgroupTargets(pid int) ([]string, error) {
	theirs, err := readProcCgroups(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	ours, err := readProcCgroups("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMountsByKey()
	if err != nil {
		return nil, err
	}
	var out []string
	for key, path := range theirs {
		if ours[key] == path {
			continue
		}
		m, ok := mounts[key]
		if !ok {
			return nil, fmt.Errorf("the container's cgroup %s (%s) is in a hierarchy not mounted here", path, keyName(key))
		}
		rel, err := filepath.Rel(m.root, path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("the container's cgroup %s is outside the mount of %s at %s", path, keyName(key), m.dir)
		}
		out = append(out, filepath.Join(m.dir, rel, "cgroup.procs"))
	}
	return out, nil
}

func keyName(key string) string {
	if key == "" {
		return "cgroup v2"
	}
	return key
}

// readProcCgroups maps each hierarchy's controller list ("" for v2) to the
// cgroup path of a /proc/PID/cgroup file.
func readProcCgroups(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 {
			out[hierarchyKey(strings.Split(f[1], ","))] = f[2]
		}
	}
	return out, nil
}

type cgroupMount struct{ dir, root string }

// cgroupMountsByKey finds in our mountinfo a mount of each cgroup
// hierarchy, keyed like readProcCgroups.
func cgroupMountsByKey() (map[string]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return cgroupMountsIn(f)
}

// cgroupMountsIn reads mountinfo lines from r.
func cgroupMountsIn(r io.Reader) (map[string]cgroupMount, error) {
	out := map[string]cgroupMount{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 5 || len(qf) < 3 {
			continue
		}
		m := cgroupMount{dir: pf[4], root: pf[3]}
		switch qf[0] {
		case "cgroup2":
			if _, seen := out[""]; !seen {
				out[""] = m
			}
		case "cgroup":
			var ctrls []string
			for _, opt := range strings.Split(qf[2], ",") {
				if cgroupV1Options[opt] || strings.HasPrefix(opt, "name=") {
					ctrls = append(ctrls, opt)
				}
			}
			key := hierarchyKey(ctrls)
			if _, seen := out[key]; !seen && key != "" {
				out[key] = m
			}
		}
	}
	return out, sc.Err()
}

// cgroupV1Options are the v1 controllers (the other mount options of a
// cgroup hierarchy say nothing about which one it is).
var cgroupV1Options = map[string]bool{
	"cpuset": true, "cpu": true, "cpuacct": true, "blkio": true, "memory": true, "devices": true, "freezer": true,
	"net_cls": true, "perf_event": true, "net_prio": true, "hugetlb": true, "pids": true, "rdma": true, "misc": true,
}

// hierarchyKey names a cgroup hierarchy by its controllers (and name=),
// sorted: "" is cgroup v2.
func hierarchyKey(ctrls []string) string {
	var out []string
	for _, c := range ctrls {
		if c != "" {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// execRun is one exec in progress.
type execRun struct {
	o      ExecOptions
	c      *Container
	cfg    *execConfig
	t      *execTarget
	static bool // our binary has no ELF interpreter (see selfIsStatic)

	pid     int
	proc    *os.Process
	msgs    chan msg
	console *os.File // our end of the stage's console socket
}

func (x *execRun) run() (int, error) {
	var sigs chan os.Signal
	if !x.o.Detach {
		sigs = make(chan os.Signal, 32)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	if err := x.start(); err != nil {
		return ExitCodeOf(err), err
	}
	defer x.console.Close()
	waitCh := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := x.proc.Wait()
		waitCh <- ps
	}()
	return x.follow(sigs, waitCh)
}

// start forks the exec stage into the namespaces, moves it into the
// cgroups and sends it its config.
func (x *execRun) start() error {
	self, err := sealedSelf()
	if err != nil {
		return runnerErr("exec: %v", err)
	}
	defer self.Close()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return runnerErr("%v", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return runnerErr("%v", err)
	}
	childEnds := []*os.File{ctlR, stW}
	fds := &execFds{Ctl: int(ctlR.Fd()), Status: int(stW.Fd()), Console: -1, Mnt: -1, Root: -1}
	nsFlags := x.t.flags
	if x.static {
		nsFlags |= unix.CLONE_NEWNS
	} else {
		fds.Mnt, fds.Root = int(x.t.mnt.Fd()), int(x.t.root.Fd())
	}
	if x.cfg.Process.Terminal {
		var consChild *os.File
		if x.console, consChild, err = socketPair(); err != nil {
			for _, f := range []*os.File{ctlR, ctlW, stR, stW} {
				f.Close()
			}
			return err
		}
		childEnds = append(childEnds, consChild)
		fds.Console = int(consChild.Fd())
	}
	plan := &forkPlan{pidfd: x.t.pidfd.Fd(), nsFlags: nsFlags, joinUser: x.t.joinUser, memfd: self.Fd(),
		first: uintptr(3 + x.o.PreserveFDs),
		keep:  [5]int32{int32(fds.Ctl), int32(fds.Status), int32(fds.Console), int32(fds.Mnt), int32(fds.Root)}}
	argv := stageCommand(stageExec, stageArgs{Exec: fds})
	argv[0] = "crun-lite"
	// The Go runtime would otherwise open and keep the cgroup cpu files it
	// finds through the mounts (the container's, for a static binary).
	env := append(stageEnv(), "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	x.pid, err = forkExecStage(plan, argv, env)
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		ctlW.Close()
		stR.Close()
		return runnerErr("exec in container %s: %v", x.c.Name, err)
	}
	x.proc, _ = os.FindProcess(x.pid)
	x.msgs = make(chan msg, 16)
	go readMsgs(stR, x.msgs)
	if err := x.joinCgroups(); err != nil {
		ctlW.Close() // the stage leaves without running anything
		x.proc.Wait()
		return err
	}
	data, _ := json.Marshal(x.cfg)
	_, err = ctlW.Write(append(data, '\n'))
	ctlW.Close()
	if err != nil {
		x.proc.Kill()
		x.proc.Wait()
		return runnerErr("exec: send the config: %v", err)
	}
	return nil
}

// joinCgroups moves the stage into the init's cgroups before it runs
// anything in the container. A rootless container has no cgroups of its
// own; one we may not join is then only a warning.
func (x *execRun) joinCgroups() error {
	for _, p := range x.t.cgroups {
		err := os.WriteFile(p, []byte(strconv.Itoa(x.pid)), 0)
		if err != nil && x.t.rootless && (errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS)) {
			x.o.Warn(fmt.Sprintf("cannot join the container's cgroup %s: %v", filepath.Dir(p), unwrapPath(err)))
			continue
		}
		if err != nil {
			x.proc.Kill()
			return runnerErr("exec: join cgroup %s: %v", filepath.Dir(p), unwrapPath(err))
		}
	}
	return nil
}

// follow waits for the stage to exec the command (or fail), relays the
// terminal and signals, and returns the command's exit status; detached, it
// returns once the command runs.
func (x *execRun) follow(sigs chan os.Signal, waitCh chan *os.ProcessState) (int, error) {
	var failure *msg
	var relay *consoleRelay
	masterCh := make(chan *os.File, 1)
	if x.console != nil {
		go func() {
			if m, err := recvFd(x.console); err == nil {
				masterCh <- m
			}
		}()
	}
	// The stage says "exec" right before it executes the command; its
	// status pipe is close-on-exec, so the end of it without an error
	// after that means the command runs.
	msgs, sawExec, execd := x.msgs, false, false
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs, execd = nil, sawExec && failure == nil
				if execd && x.o.Detach && (x.console == nil || relay != nil) {
					return x.detached()
				}
				continue
			}
			switch m.Type {
			case msgWarn:
				x.o.Warn(m.Msg)
			case msgError:
				failure = &m
			case msgExec:
				sawExec = true
			}
		case master := <-masterCh:
			if x.o.ConsoleSocket != "" {
				err := sendConsole(x.o.ConsoleSocket, master)
				master.Close()
				if err != nil {
					x.proc.Kill()
					<-waitCh
					return ExitRunner, runnerErr("exec: %v", err)
				}
				relay = &consoleRelay{} // handed over
				if execd && x.o.Detach {
					return x.detached()
				}
				continue
			}
			relay = startRelay(master, x.o.Stdio.In, x.o.Stdio.Out)
		case s := <-sigs:
			if forwardable(s) && !(relay != nil && relay.master != nil && s == unix.SIGWINCH) {
				x.proc.Signal(s)
			}
		case ps := <-waitCh:
			for m := range orClosed(msgs) {
				switch m.Type {
				case msgError:
					failure = &m
				case msgExec:
					sawExec = true
				}
			}
			if failure == nil && !sawExec {
				return ExitRunner, runnerErr("exec: the exec stage died before it ran the command (%v)", ps)
			}
			if relay != nil && relay.master != nil {
				relay.finish()
			}
			if failure != nil {
				return failure.Code, &Error{Code: failure.Code, Err: errors.New(failure.Msg)}
			}
			return exitStatus(ps, nil), nil
		}
	}
}

// detached ends a detached exec once the command runs.
func (x *execRun) detached() (int, error) {
	if err := x.writePidFile(); err != nil {
		return ExitRunner, err
	}
	return 0, nil
}

// writePidFile writes the command's pid, atomically, for --pid-file.
func (x *execRun) writePidFile() error {
	if x.o.PidFile == "" {
		return nil
	}
	tmp := x.o.PidFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(x.pid)), 0o644); err != nil {
		return runnerErr("--pid-file: %v", err)
	}
	if err := os.Rename(tmp, x.o.PidFile); err != nil {
		os.Remove(tmp)
		return runnerErr("--pid-file: %v", err)
	}
	return nil
}

// sendConsole connects to the unix socket path and passes the pty master
// through it, as runc does for --console-socket.
func sendConsole(path string, master *os.File) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("console socket %s: %w", path, err)
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(fd, []byte(master.Name()), rights, nil, 0); err != nil {
		return fmt.Errorf("console socket %s: send the pty master: %w", path, err)
	}
	return nil
}

// sigsetEmpty is what the exec stage unblocks every signal with.
var sigsetEmpty uint64

// unblockSignals clears this thread's signal mask: the fork blocked every
// signal, and the mask survives exec.
func unblockSignals() error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&sigsetEmpty)), 0, 8, 0, 0)
	if e != 0 {
		return fmt.Errorf("unblock signals: %w", e)
	}
	return nil
}
