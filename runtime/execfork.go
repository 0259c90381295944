package runtime

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How `crun-lite exec` gets a process into a running container's
// namespaces (see exec.go for the rest).
//
// setns(2) into a user namespace is refused (EINVAL) to a process with more
// than one thread, and into a mount namespace to a thread that shares its
// fs_struct (root and cwd) with others; a Go process has several threads
// before main runs. runc solves this with C code that runs before the Go
// runtime starts (nsexec); our binaries must stay free of cgo. So the
// front end forks by hand, the way syscall.forkAndExecInChild does: a raw
// clone(2) from a locked thread with every signal blocked, after which the
// child runs only the //go:nosplit //go:norace functions below, which make
// nothing but raw system calls on data prepared before the fork (no
// allocation, no stack growth, no scheduler, no write barriers).
//
//  1. The first child (single-threaded, still in the host's pid namespace)
//     makes itself non-dumpable and joins, with one setns(pidfd, flags) on
//     a pidfd of the container's init, its user namespace (first, when it
//     differs from ours: the later ones are then checked against it), pid
//     (for its children), net, ipc, uts, cgroup and time (for children)
//     namespaces; in a joined user namespace it becomes its root
//     (setresgid/setresuid 0). It forks the second child with CLONE_PARENT
//     (so the front end can wait for it), reports that child's pid and
//     exits.
//  2. The second child is in the container's pid namespace. It marks every
//     descriptor but stdio, --preserve-fds and the stage's own pipes
//     close-on-exec and executes the exec stage from a sealed memfd copy of
//     our binary (execveat, no path): the container's processes, which can
//     see it in their pid namespace, find no host file behind
//     /proc/PID/exe to open and overwrite (CVE-2019-5736).
//  3. The exec stage (execstage.go) makes itself non-dumpable at once
//     (CVE-2016-9962: the container must not ptrace or open /proc/PID/ of
//     a process with host privileges), waits until the front end has moved
//     it into the container's cgroups, sets up ids, capabilities,
//     no_new_privs and seccomp on its locked main thread and executes the
//     command from it, which makes that thread's state the whole process's.
//
// The mount namespace is joined in step 1 too when our binary is static.
// A dynamically linked one would then get its ELF interpreter and
// libraries from the container's filesystem, as root: the stage is then
// executed in the host's mount namespace and joins the container's itself
// (see selfIsStatic).

// Messages of the fork report pipe: kind, value (8 bytes each, native order).
const (
	forkPid        = 1 // value: the second child's pid (host pid namespace)
	forkErrSetns   = 2 // value: errno of setns
	forkErrIDs     = 3 // value: errno of setresgid/setresuid
	forkErrClone   = 4 // value: errno of the second clone
	forkErrExec    = 5 // value: errno of execveat
	forkErrCloexec = 6 // value: errno of close_range/fcntl
	forkErrDump    = 7 // value: errno of prctl(PR_SET_DUMPABLE)
)

// forkPlan is everything the raw children read. It lives on the heap and is
// filled before the fork; the children only write msg.
type forkPlan struct {
	pidfd    uintptr
	nsFlags  uintptr // setns flags, 0: nothing to join here
	joinUser bool
	memfd    uintptr
	report   uintptr   // write end of the report pipe
	keep     [5]int32  // descriptors the stage needs (-1: unused)
	first    uintptr   // first descriptor made close-on-exec (3 + preserved)
	empty    *byte     // "" for execveat
	argv     **byte    // NULL-terminated
	envp     **byte    // NULL-terminated
	msg      [2]uint64 // kind, value
	sigAll   uint64    // signal masks of the forking thread
	sigOld   uint64
	argvKeep []*byte
	envpKeep []*byte
}

// forkExecStage starts the exec stage (see above) and returns its pid; the
// first child is reaped before it returns.
func forkExecStage(p *forkPlan, argv, env []string) (int, error) {
	var err error
	if p.argvKeep, err = syscall.SlicePtrFromStrings(argv); err != nil {
		return 0, err
	}
	if p.envpKeep, err = syscall.SlicePtrFromStrings(env); err != nil {
		return 0, err
	}
	p.argv, p.envp = &p.argvKeep[0], &p.envpKeep[0]
	p.empty = new(byte)
	r, w, err := os.Pipe() // both close-on-exec
	if err != nil {
		return 0, err
	}
	defer r.Close()
	p.report = w.Fd()

	goruntime.LockOSThread()
	child, errno := forkBlocked(p)
	goruntime.UnlockOSThread()
	goruntime.KeepAlive(p)
	w.Close()
	if errno != 0 {
		return 0, fmt.Errorf("fork: %w", errno)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(int(child), &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	return readForkReport(r)
}

// readForkReport reads the children's messages until both have closed the
// pipe (the second by exec, or by exiting after a failure).
func readForkReport(r io.Reader) (int, error) {
	pid := 0
	var failure error
	buf := make([]byte, 16)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		kind, val := binary.NativeEndian.Uint64(buf), binary.NativeEndian.Uint64(buf[8:])
		errno := syscall.Errno(val)
		switch kind {
		case forkPid:
			pid = int(val)
		case forkErrSetns:
			failure = fmt.Errorf("join the container's namespaces: %w", errno)
		case forkErrIDs:
			failure = fmt.Errorf("become root in the container's user namespace: %w", errno)
		case forkErrClone:
			failure = fmt.Errorf("fork in the container's pid namespace: %w", errno)
		case forkErrExec:
			failure = fmt.Errorf("execute the exec stage: %w", errno)
		case forkErrCloexec:
			failure = fmt.Errorf("close descriptors: %w", errno)
		case forkErrDump:
			failure = fmt.Errorf("make the process non-dumpable: %w", errno)
		}
	}
	if failure != nil {
		if pid > 0 {
			unix.Wait4(pid, nil, 0, nil) // it exited after reporting
		}
		return 0, failure
	}
	if pid == 0 {
		return 0, fmt.Errorf("the exec stage's parent died without a word")
	}
	return pid, nil
}

// forkBlocked blocks every signal on this (locked) thread, so that no Go
// signal handler ever runs in a child, forks, and restores the mask in the
// parent. The children keep every signal blocked until the exec stage
// unblocks them right before it executes the command.
//
//go:norace
//go:nosplit
func forkBlocked(p *forkPlan) (uintptr, syscall.Errno) {
	p.sigAll = ^uint64(0)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.sigAll)), uintptr(unsafe.Pointer(&p.sigOld)), 8, 0, 0)
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		forkFirstChild(p) // does not return
	}
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.sigOld)), 0, 8, 0, 0)
	return pid, errno
}

// forkFirstChild is step 1 of the comment above.
//
//go:norace
//go:nosplit
func forkFirstChild(p *forkPlan) {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0, 0, 0, 0); e != 0 {
		forkFail(p, forkErrDump, e)
	}
	if p.nsFlags != 0 {
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, p.pidfd, p.nsFlags, 0); e != 0 {
			forkFail(p, forkErrSetns, e)
		}
	}
	if p.joinUser {
		// setgroups is denied in a namespace with a single-id map: then
		// there are no other groups to drop either.
		syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0); e != 0 {
			forkFail(p, forkErrIDs, e)
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); e != 0 {
			forkFail(p, forkErrIDs, e)
		}
	}
	pid, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(unix.CLONE_PARENT|syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		forkFail(p, forkErrClone, e)
	}
	if pid == 0 {
		forkSecondChild(p)
	}
	p.msg[0], p.msg[1] = forkPid, uint64(pid)
	syscall.RawSyscall(syscall.SYS_WRITE, p.report, uintptr(unsafe.Pointer(&p.msg[0])), 16)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
}

// forkSecondChild is step 2 of the comment above.
//
//go:norace
//go:nosplit
func forkSecondChild(p *forkPlan) {
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, p.first, ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC); e != 0 {
		forkFail(p, forkErrCloexec, e)
	}
	for i := 0; i < len(p.keep); i++ {
		if p.keep[i] < 0 {
			continue
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(p.keep[i]), syscall.F_SETFD, 0); e != 0 {
			forkFail(p, forkErrCloexec, e)
		}
	}
	_, _, e := syscall.RawSyscall6(unix.SYS_EXECVEAT, p.memfd, uintptr(unsafe.Pointer(p.empty)),
		uintptr(unsafe.Pointer(p.argv)), uintptr(unsafe.Pointer(p.envp)), unix.AT_EMPTY_PATH, 0)
	forkFail(p, forkErrExec, e)
}

// forkFail reports a failed step of a child and ends it.
//
//go:norace
//go:nosplit
func forkFail(p *forkPlan, kind uint64, e syscall.Errno) {
	p.msg[0], p.msg[1] = kind, uint64(e)
	syscall.RawSyscall(syscall.SYS_WRITE, p.report, uintptr(unsafe.Pointer(&p.msg[0])), 16)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
}

// sealedSelf returns a sealed memfd copy of our own binary, executable and
// close-on-exec (execveat with AT_EMPTY_PATH still runs it).
func sealedSelf() (*os.File, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	fd, err := unix.MemfdCreate("crun-lite-exec", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL { // kernels before 6.3 know no MFD_EXEC
		fd, err = unix.MemfdCreate("crun-lite-exec", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "crun-lite-exec")
	if _, err := io.Copy(mem, self); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copy /proc/self/exe: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		mem.Close()
		return nil, fmt.Errorf("seal the binary copy: %w", err)
	}
	return mem, nil
}

// selfIsStatic tells whether our binary has no ELF interpreter: then the
// first child joins the mount namespace as well, and the exec stage runs in
// the container's mount namespace from its first instruction, as runc's
// does. A dynamically linked binary must be executed in the host's mount
// namespace to load its libraries from there; the stage then moves the
// root of all its threads to the container's root at once, and joins the
// mount namespace on its main thread (step 3 above). Until then (a few
// milliseconds) its threads' root is the host's, which a container process
// holding CAP_SYS_PTRACE could reach (non-dumpable does not stop it; the
// others are kept out because the stage has more capabilities than they
// have): exec with a dynamic binary refuses such containers. Build with
// CGO_ENABLED=0.
func selfIsStatic() (bool, error) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return false, fmt.Errorf("read our own binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
