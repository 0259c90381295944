package runtime

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeExtraFdsOnExec makes every descriptor above stderr close at the
// next exec. Whatever the runtime holds at that point (the /dev/fuse of
// the container's own union, a directory of the host, the store, the
// stage's pipes, a descriptor its caller leaked to it) must not reach
// the container's process: a host directory fd is a way out of the root
// (runc's CVE-2024-21626), and /dev/fuse would let the container answer
// the requests of its union's users. Descriptors meant for the process
// are made from 0-2 later (the console) or not at all.
func closeExtraFdsOnExec() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err != unix.ENOSYS && err != unix.EINVAL {
		if err != nil {
			return fmt.Errorf("close_range: %w", err)
		}
		return nil
	}
	// Before Linux 5.11: each open descriptor, from /proc/self/fd.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
