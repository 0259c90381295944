package main

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noOpenat2Env makes the test binary a wrapper that runs its arguments with
// openat2 failing ENOSYS, as on a kernel before 5.6.
const noOpenat2Env = "_UNIONFSD_TEST_NO_OPENAT2"

// init runs before TestMain: as the wrapper, install the seccomp filter on
// this thread and exec the command, which inherits it.
func init() {
	if os.Getenv(noOpenat2Env) == "" {
		return
	}
	os.Unsetenv(noOpenat2Env)
	runtime.LockOSThread()
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_OPENAT2},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		panic(err)
	}
	panic(syscall.Exec(os.Args[1], os.Args[1:], os.Environ()))
}

// TestNoOpenat2: on a kernel without openat2 the mount fails at once with
// one line saying what is missing, and nothing is mounted or created.
func TestNoOpenat2(t *testing.T) {
	requireRoot(t)
	test, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := newLayout(t)
	r := runCLI(t, runOpts{env: []string{noOpenat2Env + "=1"}, wrap: []string{test}},
		b.up+":"+b.l2+":"+b.l1, b.mnt)
	assertOneErrorLine(t, r, exitFail, "unionfsd needs openat2 (Linux 5.6+)", "which this kernel")
	assertNothingLeft(t, b)
	if entries, _ := os.ReadDir(b.up); len(entries) != 0 {
		t.Errorf("failed mount wrote into the upper: %v", entries)
	}
}
