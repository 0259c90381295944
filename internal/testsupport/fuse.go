package testsupport

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

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

// MainDetachingMounts runs the tests of m, then detaches the mounts
// detachAll finds left behind (each one named on stderr, prefixed by pkg,
// and a failure) and exits. When go test's -timeout is near, which kills
// the binary without running t.Cleanup, it detaches them first.
func MainDetachingMounts(m *testing.M, pkg string, detachAll func() []string) {
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			time.AfterFunc(d-min(d/10, 10*time.Second), func() {
				if left := detachAll(); len(left) > 0 {
					fmt.Fprintf(os.Stderr, "%s: test timeout is near, detached %d mounts: %v\n", pkg, len(left), left)
				}
			})
		}
	}
	code := m.Run()
	if left := detachAll(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "%s: detached %d mounts left behind: %v\n", pkg, len(left), left)
		code = 1
	}
	os.Exit(code)
}
