package testsupport

import (
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireFUSE skips t unless it can mount: it runs as root and /dev/fuse
// exists. Tests that mount FUSE, kernel overlay, tmpfs or loop devices
// call it first.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mount tests need root: run them as root (sudo ./scripts/test.sh)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse: modprobe fuse, or run on a host with FUSE")
	}
}

// UnmountAtCleanup makes sure the mount at mnt goes away: unmount runs at
// t's cleanup, or earlier through the returned func, once either way. If
// unmount fails (a busy mount) the mount is detached, so no test leaves a
// mount behind.
func UnmountAtCleanup(t testing.TB, mnt string, unmount func() error) (unmountNow func()) {
	var once sync.Once
	unmountNow = func() {
		once.Do(func() {
			if err := unmount(); err != nil {
				unix.Unmount(mnt, unix.MNT_DETACH)
			}
		})
	}
	t.Cleanup(unmountNow)
	return unmountNow
}
