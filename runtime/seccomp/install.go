package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads the filter on the calling thread (on every thread of the
// process with SECCOMP_FILTER_FLAG_TSYNC). Without no_new_privs set the
// caller needs CAP_SYS_ADMIN. The caller should have its OS thread locked:
// the filter stays on this thread and the processes it execs.
func (f *Filter) Install() error {
	if len(f.Prog) == 0 {
		return fmt.Errorf("install seccomp filter: empty program")
	}
	prog := unix.SockFprog{Len: uint16(len(f.Prog)), Filter: &f.Prog[0]}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(f.Flags), uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("install seccomp filter: %w", e)
	}
	return nil
}
