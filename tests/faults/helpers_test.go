package faults

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/tests/difftest"
	"github.com/unionfsd/unionfsd/unionfs"
)

// TestMain detaches the mounts left behind (testsupport.MainDetachingMounts).
func TestMain(m *testing.M) { testsupport.MainDetachingMounts(m, "faults", difftest.DetachAll) }

// mountTmpfs mounts a tmpfs of size bytes on a fresh dir and returns it.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := difftest.Unmount(dir); err != nil {
			t.Errorf("unmount tmpfs: %v", err)
		}
	})
	return dir
}

// mountExt4 makes an ext4 file system of size bytes in an image file, mounts
// it through a loop device on a fresh dir and returns the dir. Cleanup
// unmounts it and detaches the loop device.
func mountExt4(t *testing.T, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 missing: apt-get install e2fsprogs")
	}
	base := t.TempDir()
	img, dir := filepath.Join(base, "ext4.img"), filepath.Join(base, "ext4")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	// -m 0: no blocks reserved for root (we are root: they would be free to us
	// but not counted as available); no journal: a small fs has room to spare.
	run(t, "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", img)
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
	t.Cleanup(func() {
		if err := difftest.Unmount(dir); err != nil {
			t.Errorf("unmount ext4: %v", err)
		}
	})
	return dir
}

// backend is a file system of limited size to put an upper or a store on.
type backend struct {
	name  string
	mount func(t *testing.T, size int64) string
}

var backends = []backend{{"tmpfs", mountTmpfs}, {"ext4", mountExt4}}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fill allocates a filler file in the file system at root so that about
// leave bytes stay free, and returns its path: removing it frees the space
// again. fallocate moves no data, which keeps it fast under -race.
func fill(t *testing.T, root string, leave int64) string {
	t.Helper()
	p := filepath.Join(root, "filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Cleanup(func() { os.Remove(p) }) // the test may have removed it
	// The file's own metadata (ext4 extent blocks) needs a little room:
	// back off until the allocation fits.
	for size := freeBytes(t, root) - leave; ; size -= 16 << 10 {
		if size <= 0 {
			break
		}
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("fallocate %s: %v", p, err)
		}
	}
	if free := freeBytes(t, root); free > leave+64<<10 {
		t.Fatalf("fill %s: %d bytes free, want about %d", root, free, leave)
	}
	return p
}

// freeBytes is the space left on the file system holding p.
func freeBytes(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// union is a unionfsd mount served in-process.
type union struct {
	upper, work, mnt string
}

// mountUnion serves unionfsd over lower with upper and work at a fresh
// mountpoint; cleanup unmounts it.
func mountUnion(t *testing.T, lower, upper, work string) *union {
	t.Helper()
	return mountUnionLowers(t, []string{lower}, upper, work)
}

// mountUnionLowers is mountUnion over several lowers, topmost first.
func mountUnionLowers(t *testing.T, lowers []string, upper, work string) *union {
	t.Helper()
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u := &union{upper: upper, work: work, mnt: filepath.Join(t.TempDir(), "mnt")}
	if err := os.Mkdir(u.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := unionfs.DefaultConfig()
	cfg.Lowers, cfg.Upper, cfg.Work = lowers, upper, work
	// No kernel caching: every check below must reach the daemon.
	cfg.EntryTimeout, cfg.AttrTimeout, cfg.NegativeTimeout = 0, 0, 0
	unmount, err := difftest.MountUnionfsd(u.mnt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmount union: %v", err)
		}
	})
	return u
}

func (u *union) m(rel string) string { return filepath.Join(u.mnt, rel) }

// assertServing checks that the daemon still answers: stat, readdir, and a
// small create, write, read and unlink through the mount.
func (u *union) assertServing(t *testing.T) {
	t.Helper()
	within(t, 10*time.Second, "stat and readdir of the mount", func() error {
		if _, err := os.Stat(u.mnt); err != nil {
			return err
		}
		_, err := os.ReadDir(u.mnt)
		return err
	})
}

// assertWritable checks that a small new file can be written, read back
// and removed through the mount.
func (u *union) assertWritable(t *testing.T) {
	t.Helper()
	p := u.m("probe.txt")
	within(t, 10*time.Second, "write a small file", func() error {
		if err := os.WriteFile(p, []byte("probe"), 0o644); err != nil {
			return err
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if string(got) != "probe" {
			return fmt.Errorf("read back %q", got)
		}
		return os.Remove(p)
	})
}

// within runs fn and fails the test if it errs or does not return within d
// (a hung FUSE request must fail the test, not block it).
func within(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	if err := timed(d, fn); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// timed runs fn and returns its error, or a timeout error after d.
func timed(d time.Duration, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("still blocked after %v: the daemon hangs", d)
	}
}

// assertNoStaging checks that the work directory holds nothing once an
// operation returned (the shared whiteout aside): no temp file a failed
// copy-up left behind.
func assertNoStaging(t *testing.T, work string) {
	t.Helper()
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		// unionfsd keeps one empty file there on purpose, the link
		// target of every whiteout it makes.
		if e.Name() != "whiteout" {
			names = append(names, e.Name())
		}
	}
	if len(names) > 0 {
		t.Errorf("work dir %s holds %v after the operation returned", work, names)
	}
}

// randomBytes returns n pseudo-random bytes from seed (incompressible, so
// sizes on disk are what they say).
// AES-CTR: its assembly keeps test setup fast under -race, which slows
// every byte a Go loop touches.
func randomBytes(seed int64, n int) []byte {
	key := sha256.Sum256([]byte(strconv.FormatInt(seed, 10)))
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		panic(err)
	}
	b := make([]byte, n)
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(b, b)
	return b
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// tree maps every path below root to "dir", "link -> target" or
// "file <size> <sha>": a file's size from stat and its hash from reading it,
// so a stale size shows as a difference too.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link -> " + target
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %d %s", info.Size(), sum(data))
			if int64(len(data)) != info.Size() {
				out[rel] += fmt.Sprintf(" (read %d bytes)", len(data))
			}
		default:
			out[rel] = info.Mode().Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// assertSameTree fails with the differences between two trees.
func assertSameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %s", p, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", p, g, w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", p, g))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Errorf("%s differs:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// assertErrno checks that err carries the errno want.
func assertErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v (%s)", what, err, want, unix.ErrnoName(want))
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
