package difftest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/fuseuring"
	"github.com/unionfsd/unionfsd/internal/mountinfo"
	"github.com/unionfsd/unionfsd/unionfs"
	"golang.org/x/sys/unix"
)

// Mounter mounts a union of lowers (top first) with upper and work at mnt
// and returns the function that unmounts it.
type Mounter struct {
	Name string
	// EmulateEXDEV redoes directory renames that fail with EXDEV piece by
	// piece (see renameMaybeEmulated): set for kernel overlay.
	EmulateEXDEV bool
	// Format is the whiteout format this mounter's lower layers use.
	Format Format
	Mount  func(lowers []string, upper, work, mnt string) (unmount func() error, err error)
}

// OverlayOptions are the overlay mount options the comparison assumes:
// no redirects, no index, no metacopy, so that the upper holds plain
// copies, as unionfsd's does.
const OverlayOptions = "redirect_dir=off,index=off,metacopy=off"

// Overlay is kernel overlayfs.
var Overlay = Mounter{
	Name:         "overlay",
	EmulateEXDEV: true,
	Format:       OverlayFormat,
	Mount:        mountOverlay,
}

// Unionfsd is unionfsd served in-process by unionfs.Mount. Work may be
// empty: unionfsd then puts its workdir inside the upper.
var Unionfsd = Mounter{
	Name:   "unionfsd",
	Format: OverlayFormat,
	Mount:  mountUnionfsd,
}

// UnionfsdOCI is Unionfsd reading lower layers in the OCI whiteout format.
var UnionfsdOCI = Mounter{
	Name:   "unionfsd",
	Format: OCIFormat,
	Mount:  mountUnionfsd,
}

func mountOverlay(lowers []string, upper, work, mnt string) (func() error, error) {
	if work == "" {
		// overlay always needs one; unionfsd would put it inside the upper.
		work = upper + ".work"
		if err := os.MkdirAll(work, 0o755); err != nil {
			return nil, fmt.Errorf("mount overlay: %w", err)
		}
	}
	for _, p := range append(lowers, upper, work, mnt) {
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("mount overlay: path %q holds ',' or ':', which overlay options cannot carry", p)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,%s",
		strings.Join(lowers, ":"), upper, work, OverlayOptions)
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mount -t overlay -o %s %s: %w", opts, mnt, err)
	}
	register(mnt)
	return func() error {
		defer unregister(mnt)
		return Unmount(mnt)
	}, nil
}

func mountUnionfsd(lowers []string, upper, work, mnt string) (func() error, error) {
	return mountUnionfsdWith(nil)(lowers, upper, work, mnt)
}

// UnionfsdWith is Unionfsd with tweak applied to its default config.
func UnionfsdWith(name string, tweak func(*unionfs.Config)) Mounter {
	return Mounter{Name: name, Format: OverlayFormat, Mount: mountUnionfsdWith(tweak)}
}

func mountUnionfsdWith(tweak func(*unionfs.Config)) func(lowers []string, upper, work, mnt string) (func() error, error) {
	return func(lowers []string, upper, work, mnt string) (func() error, error) {
		cfg := unionfs.DefaultConfig()
		cfg.Lowers = append([]string(nil), lowers...)
		cfg.Upper = upper
		cfg.Work = work
		if tweak != nil {
			tweak(&cfg)
		}
		return MountUnionfsd(mnt, cfg)
	}
}

// MountUnionfsd serves unionfsd with cfg at mnt in-process and returns the
// function that unmounts it (lazily, if it stays busy).
//
// UNIONFSD_IO_URING=auto|on|off in the environment sets cfg.IoUring of every
// unionfsd the harness mounts, to run whole suites over FUSE over io_uring
// (on needs the kernel's switch, /sys/module/fuse/parameters/enable_uring,
// set to Y; TestUnionfsdVariants and TestPosixIoUring set it themselves).
func MountUnionfsd(mnt string, cfg unionfs.Config) (func() error, error) {
	if m := os.Getenv(IoUringEnv); m != "" {
		cfg.IoUring = m
	}
	server, err := unionfs.Mount(mnt, cfg)
	if err != nil {
		return nil, fmt.Errorf("unionfs.Mount %s: %w", mnt, err)
	}
	register(mnt)
	return func() error {
		defer unregister(mnt)
		done := make(chan error, 1)
		go func() { done <- server.Unmount() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(unmountTimeout):
			// A deadlocked server never lets its loops end: cut it loose.
			stacks := stuckStacks()
			if conn := fuseConn(mnt); conn >= 0 {
				AbortFUSE(conn)
			}
			err = fmt.Errorf("server did not stop within %v; its goroutines:\n%s", unmountTimeout, stacks)
		}
		if err == nil {
			return nil
		}
		// Busy or stuck: detach it so that nothing leaks past the test.
		derr := unix.Unmount(mnt, unix.MNT_DETACH)
		if derr != nil && !errors.Is(derr, unix.EINVAL) {
			return fmt.Errorf("unmount unionfsd %s: %v; lazy unmount: %w", mnt, err, derr)
		}
		return fmt.Errorf("unmount unionfsd %s: %w (lazily detached)", mnt, err)
	}, nil
}

// stuckStacks returns the stacks of the goroutines that are inside unionfs
// (the ones a deadlock would hold), so a stuck unmount says where it hangs.
func stuckStacks() string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "unionfsd/unionfs.") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}

// unmountTimeout bounds how long unmounting unionfsd may take.
const unmountTimeout = 10 * time.Second

// Unmount unmounts a kernel mount at mnt, retrying while busy and detaching
// lazily in the end. Not mounted is not an error.
func Unmount(mnt string) error {
	var err error
	for i := 0; i < 10; i++ {
		err = unix.Unmount(mnt, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	if derr := unix.Unmount(mnt, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %v; lazy unmount: %w", mnt, err, derr)
	}
	return fmt.Errorf("unmount %s: %w (lazily detached)", mnt, err)
}

// CanMount reports why this machine cannot run the comparison, or "" if it
// can: it needs root, kernel overlay and /dev/fuse.
func CanMount() string {
	if os.Geteuid() != 0 {
		return "needs root (mount, mknod of whiteouts, trusted.* xattrs): run the tests as root"
	}
	fsys, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(fsys), "\toverlay\n") {
		return "kernel overlayfs is not available: modprobe overlay"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "/dev/fuse is missing: modprobe fuse (and apt-get install fuse3)"
	}
	return ""
}

// live maps the mountpoints this package mounted and has not unmounted to
// their FUSE connection number (-1 for kernel mounts).
var (
	liveMu sync.Mutex
	live   = map[string]int{}
)

func register(mnt string) {
	liveMu.Lock()
	defer liveMu.Unlock()
	live[mnt] = fuseConn(mnt)
}

func unregister(mnt string) {
	liveMu.Lock()
	defer liveMu.Unlock()
	delete(live, mnt)
}

// DetachAll lazily detaches every mount still registered and returns their
// paths. It is the last resort of a test binary about to die (go test's
// timeout panics without running cleanups): it touches no file in the
// mounts, so a hung mount cannot block it, and the process exit then ends
// the in-process FUSE servers.
func DetachAll() []string {
	liveMu.Lock()
	defer liveMu.Unlock()
	var out []string
	for mnt, conn := range live {
		if conn >= 0 {
			AbortFUSE(conn)
		}
		unix.Unmount(mnt, unix.MNT_DETACH)
		out = append(out, mnt)
		delete(live, mnt)
	}
	return out
}

// fuseConn returns the FUSE connection number of the mount at mnt (the
// minor number of its device), or -1 if it is not a FUSE mount. It reads
// /proc/self/mountinfo, never the mount itself.
func fuseConn(mnt string) int {
	mounts, err := mountinfo.Read()
	if err != nil {
		return -1
	}
	conn := -1
	for _, m := range mounts {
		if m.Point == mnt && strings.HasPrefix(m.FSType, "fuse") {
			conn = m.Minor // the last mount on mnt is the visible one
		}
	}
	return conn
}

// fusectlDir is where the kernel's FUSE control file system lives.
const fusectlDir = "/sys/fs/fuse/connections"

// AbortFUSE aborts FUSE connection conn: every request waiting for the
// server fails with ENOTCONN. It is the only way to free a thread stuck on a
// deadlocked in-process server (the process cannot even exit while it
// waits, since it holds the server's /dev/fuse fd itself). It mounts the
// fusectl file system for the time it needs it, if it is not mounted.
func AbortFUSE(conn int) error {
	ctl := filepath.Join(fusectlDir, strconv.Itoa(conn), "abort")
	if _, err := os.Stat(filepath.Dir(ctl)); err != nil {
		if err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil {
			return fmt.Errorf("abort FUSE connection %d: mount fusectl: %w", conn, err)
		}
		defer unix.Unmount(fusectlDir, 0)
	}
	if err := os.WriteFile(ctl, []byte("1"), 0o200); err != nil {
		return fmt.Errorf("abort FUSE connection %d: %w", conn, err)
	}
	return nil
}

// IoUringEnv names the environment variable that sets unionfsd's io_uring
// mode for every mount of the harness (see MountUnionfsd).
const IoUringEnv = "UNIONFSD_IO_URING"

// NeedIoUring switches the kernel's FUSE over io_uring on for the test and
// back after it, or skips the test saying why it cannot (kernel older than
// 6.14, not root).
func NeedIoUring(t *testing.T) {
	t.Helper()
	restore, err := fuseuring.Set(true)
	if err != nil {
		t.Skipf("%v: not testing io_uring=on; the other tests ran over /dev/fuse", err)
	}
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Error(err)
		}
	})
}
