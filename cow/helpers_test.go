package cow

// The cow tests' helpers: fixtures, assertions on copies, sparse files,
// scratch filesystems (tmpfs, XFS) and running as another user.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// fixture is a source dir, a destination dir and an engine whose workdir is
// on the destination's filesystem.
type fixture struct {
	src, dst string
	eng      *Engine
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{src: filepath.Join(base, "lower"), dst: filepath.Join(base, "upper")}
	for _, d := range []string{f.src, f.dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := New(filepath.Join(base, "work"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f.eng = eng
	return f
}

func (f *fixture) srcPath(name string) string { return filepath.Join(f.src, name) }

func (f *fixture) dstPath(name string) string { return filepath.Join(f.dst, name) }

// assertNoLeftovers fails if the workdir holds anything.
func assertNoLeftovers(t *testing.T, eng *Engine) {
	t.Helper()
	ents, err := os.ReadDir(eng.WorkDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("leftover in workdir: %s", e.Name())
	}
}

func assertMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s should not exist (lstat err=%v)", p, err)
	}
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown to arbitrary ids, mknod, trusted.* xattrs, mount): run the tests as root")
	}
}

// setMeta gives p a distinctive owner and old, nanosecond-precise times.
func setMeta(t *testing.T, p string, uid, gid int) {
	t.Helper()
	if err := unix.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{{Sec: 1_000_000_001, Nsec: 123_456_789}, {Sec: 1_200_000_003, Nsec: 987_654_321}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// assertSameMeta compares type, mode, owner, rdev and atime/mtime of dst
// with s, the source's lstat taken before the copy (reading a symlink
// updates its atime).
func assertSameMeta(t *testing.T, s unix.Stat_t, dst string) {
	t.Helper()
	d := lstat(t, dst)
	if s.Mode != d.Mode {
		t.Errorf("%s: mode %#o, want %#o", dst, d.Mode, s.Mode)
	}
	if s.Uid != d.Uid || s.Gid != d.Gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", dst, d.Uid, d.Gid, s.Uid, s.Gid)
	}
	if s.Rdev != d.Rdev {
		t.Errorf("%s: rdev %#x, want %#x", dst, d.Rdev, s.Rdev)
	}
	if s.Mtim != d.Mtim {
		t.Errorf("%s: mtime %v, want %v", dst, d.Mtim, s.Mtim)
	}
	if s.Atim != d.Atim {
		t.Errorf("%s: atime %v, want %v", dst, d.Atim, s.Atim)
	}
}

func xattr(t *testing.T, p, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", p, name, err)
	}
	return string(buf[:n])
}

// forBothStagings runs a test with regular files copied through an unnamed
// O_TMPFILE (the default) and through a named staging file (the fallback).
func forBothStagings(t *testing.T, test func(t *testing.T, named bool)) {
	for _, named := range []bool{false, true} {
		name := "tmpfile"
		if named {
			name = "named"
		}
		t.Run(name, func(t *testing.T) { test(t, named) })
	}
}

// dataLayout lists the [data, hole) segments of a file.
func dataLayout(t *testing.T, p string) [][2]int64 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var segs [][2]int64
	for off := int64(0); ; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return segs
		}
		if err != nil {
			t.Fatal(err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, [2]int64{data, hole})
		off = hole
	}
}

func assertSameContent(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(ba)) {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			t.Fatalf("%s and %s differ in the MiB at offset %d", a, b, off)
		}
		if ea != nil || eb != nil {
			return
		}
	}
}

// makeSparse writes two small random extents into a file of the given size.
func makeSparse(t *testing.T, p string, size int64, offs ...int64) {
	t.Helper()
	file, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	chunk := make([]byte, 8192)
	for _, off := range offs {
		rand.Read(chunk)
		if _, err := file.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := file.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// mountTmpfs mounts a tmpfs of the given size on a fresh dir, unmounted in
// Cleanup.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("cannot mount tmpfs (%v): run as root with mount rights", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// asUser runs fn on a dedicated OS thread whose credentials alone are
// dropped to uid/gid (setresuid on one thread, not the process), so the rest
// of the test binary stays root. The thread dies with the goroutine.
func asUser(t *testing.T, uid, gid int, fn func()) {
	t.Helper()
	requireRoot(t)
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			done <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), 0); e != 0 {
			done <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), 0); e != 0 {
			done <- e
			return
		}
		defer close(done)
		fn()
	}()
	if err := <-done; err != nil {
		t.Fatalf("dropping to %d:%d: %v", uid, gid, err)
	}
}

// rootlessFixture is a fixture that uid 65534 can use.
func rootlessFixture(t *testing.T) *fixture {
	f := newFixture(t, Options{})
	base := filepath.Dir(f.src)
	for _, d := range []string{filepath.Dir(base), base, f.src} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{f.dst, f.eng.WorkDir()} {
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func buildOpaqueDir(tmp string) error {
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(tmp, ".wh..wh..opq"), nil, 0o644)
}

func assertOpaqueDir(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(p, ".wh..wh..opq")); err != nil {
		t.Errorf("%s is not the staged opaque dir: %v", p, err)
	}
}

// mountXFS makes and loop-mounts a small XFS with reflink, unmounted in
// Cleanup.
func mountXFS(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("mkfs.xfs not found: install xfsprogs to test the FICLONE path")
	}
	img := filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 320<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs failed (%v): %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount XFS (%v): %s; needs root and loop devices", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func freeBytes(t *testing.T, p string) int64 {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		t.Fatal(err)
	}
	return int64(sfs.Bfree) * sfs.Bsize
}
