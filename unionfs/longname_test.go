package unionfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/whiteout"
)

// nameOf is a file name of exactly n bytes, distinct per n and tag.
func nameOf(tag byte, n int) string {
	s := fmt.Sprintf("%c%d-", tag, n)
	return (s + strings.Repeat("x", n))[:n]
}

// Every operation on a fresh name works for every name length up to
// NAME_MAX. Names of 252-255 bytes have no ".wh." name; looking that up
// used to fail the whole operation with ENAMETOOLONG.
func TestLongNamesFresh(t *testing.T) {
	tu := newLayers(t, 1)
	tu.mount(t, nil)
	for n := 1; n <= whiteout.NameMax; n++ {
		if n <= 2 {
			continue // "." and ".." have no room for a distinct tag
		}
		f, d, l, p := tu.m(nameOf('f', n)), tu.m(nameOf('d', n)), tu.m(nameOf('l', n)), tu.m(nameOf('p', n))
		step := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("name of %d bytes: %s: %v", n, what, err)
			}
		}
		fd, err := syscall.Open(f, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, 0o644)
		step("create", err)
		syscall.Write(fd, []byte("data"))
		syscall.Close(fd)
		step("chmod", syscall.Chmod(f, 0o600))
		step("chown", syscall.Chown(f, 1, 1))
		step("truncate", syscall.Truncate(f, 2))
		fd, err = syscall.Open(f, syscall.O_RDWR|syscall.O_TRUNC, 0)
		step("open O_TRUNC", err)
		syscall.Close(fd)
		step("link", syscall.Link(f, l))
		step("unlink link", syscall.Unlink(l))
		step("rename", syscall.Rename(f, l))
		step("rename back", syscall.Rename(l, f))
		step("unlink", syscall.Unlink(f))
		step("mkdir", syscall.Mkdir(d, 0o755))
		step("rename dir", syscall.Rename(d, l))
		step("rmdir", syscall.Rmdir(l))
		step("mknod fifo", syscall.Mknod(p, syscall.S_IFIFO|0o644, 0))
		step("unlink fifo", syscall.Unlink(p))
	}
	ents, err := os.ReadDir(tu.mnt)
	if err != nil || len(ents) != 0 {
		t.Errorf("merged root after the cycle: %v %v, want empty", ents, err)
	}
}

// Lower names of every length can be deleted, renamed away and created
// again; a name too long for ".wh." is deleted with an overlay-format
// whiteout (a 0/0 device under the name), which layer export turns into
// ".wh.NAME".
func TestLongNamesDeleteLower(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tu := newLayers(t, 1)
	for _, n := range []int{1, 200, 250, 251, 252, 253, 254, 255} {
		writeFile(t, filepath.Join(tu.lowers[0], nameOf('f', n)), "f")
		writeFile(t, filepath.Join(tu.lowers[0], nameOf('r', n)), "r")
		mkdirAll(t, filepath.Join(tu.lowers[0], nameOf('d', n)))
		mkdirAll(t, filepath.Join(tu.lowers[0], nameOf('e', n)))
	}
	before := testsupport.Fingerprint(t, tu.lowers[0])
	tu.mount(t, nil)
	for _, n := range []int{1, 200, 250, 251, 252, 253, 254, 255} {
		f, r, d, e := nameOf('f', n), nameOf('r', n), nameOf('d', n), nameOf('e', n)
		must(t, syscall.Unlink(tu.m(f)))
		must(t, syscall.Rmdir(tu.m(d)))
		must(t, syscall.Rename(tu.m(r), tu.m("moved-r"+fmt.Sprint(n))))
		must(t, syscall.Rename(tu.m(e), tu.m("moved-e"+fmt.Sprint(n))))
		for _, gone := range []string{f, d, r, e} {
			var st syscall.Stat_t
			if err := syscall.Lstat(tu.m(gone), &st); err != syscall.ENOENT {
				t.Errorf("%d-byte name after delete: lstat = %v, want ENOENT", n, err)
			}
		}
		var st unix.Stat_t
		if whiteout.NameFits(f) {
			must(t, unix.Lstat(filepath.Join(tu.upper, whiteout.Name(f)), &st))
		} else if err := unix.Lstat(filepath.Join(tu.upper, f), &st); err != nil || !whiteout.IsOverlayWhiteout(&st) {
			t.Errorf("%d-byte name: upper entry %v (mode %o), want a 0/0 device", n, err, st.Mode)
		}
		// The name can be used again, and then deleted again.
		must(t, os.WriteFile(tu.m(f), []byte("new"), 0o644))
		must(t, syscall.Mkdir(tu.m(d), 0o755))
		if b, err := os.ReadFile(tu.m(f)); err != nil || string(b) != "new" {
			t.Errorf("%d-byte name recreated: %q %v", n, b, err)
		}
		must(t, syscall.Unlink(tu.m(f)))
		must(t, syscall.Rmdir(tu.m(d)))
	}
	ents, err := os.ReadDir(tu.mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "moved-") {
			t.Errorf("merged root shows %s", e.Name())
		}
	}
	if len(ents) != 16 {
		t.Errorf("merged root has %d entries, want the 16 moved ones", len(ents))
	}
	if testsupport.Fingerprint(t, tu.lowers[0]) != before {
		t.Error("lower was modified")
	}
}

// Paths as long as PATH_MAX allows through the mount work: a chain of
// 255-byte directory names, and a file at the end.
func TestLongPaths(t *testing.T) {
	tu := newLayers(t, 1)
	// The layer dirs' paths are kept no longer than the mountpoint's: the
	// daemon still builds "layer dir + relative path" names, which must fit
	// PATH_MAX too (dir-fd based calls lift that).
	tu.mnt = filepath.Join(filepath.Dir(tu.mnt), "mountpoint-longer-than-the-layers")
	mkdirAll(t, tu.mnt)
	tu.mount(t, nil)
	dir := tu.mnt
	comp := strings.Repeat("d", 255)
	for len(dir)+1+len(comp)+1+20 < unix.PathMax-1 {
		dir += "/" + comp
		must(t, os.Mkdir(dir, 0o755))
	}
	rest := unix.PathMax - 1 - len(dir) - 1 // room for the last name, NUL excluded
	if rest > 255 {
		rest = 255
	}
	f := dir + "/" + strings.Repeat("f", rest)
	if len(f) != unix.PathMax-1 && rest != 255 {
		t.Fatalf("path of %d bytes, want %d", len(f), unix.PathMax-1)
	}
	must(t, os.WriteFile(f, []byte("deep"), 0o644))
	if b, err := os.ReadFile(f); err != nil || string(b) != "deep" {
		t.Fatalf("read %d-byte path: %q %v", len(f), b, err)
	}
	must(t, os.Chmod(f, 0o600))
	must(t, os.Remove(f))
}

// When the upper cannot hold a 0/0 device (here: an upper on kernel
// overlay, which refuses to make one), a lower name too long for ".wh." is
// deleted by copying its directory up whole and making it opaque; the
// merged view is exactly what a whiteout would give.
func TestLongNamesDeleteWithoutDevices(t *testing.T) {
	testsupport.RequireFUSE(t)
	tu := newLayers(t, 1)
	base := filepath.Dir(tu.upper)
	ovl := filepath.Join(base, "ovl")
	mkdirAll(t, ovl, base+"/ol", base+"/ou", base+"/ow")
	if err := unix.Mount("overlay", ovl, "overlay", 0, "lowerdir="+base+"/ol,upperdir="+base+"/ou,workdir="+base+"/ow"); err != nil {
		t.Skipf("kernel overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ovl, unix.MNT_DETACH) })
	tu.upper, tu.work = filepath.Join(ovl, "upper"), filepath.Join(ovl, "work")
	mkdirAll(t, tu.upper, tu.work)
	if unix.Mknod(filepath.Join(tu.upper, "probe"), unix.S_IFCHR, 0) == nil {
		t.Skip("this kernel's overlay makes 0/0 devices")
	}
	long, longDir := nameOf('f', 255), nameOf('d', 253)
	writeFile(t, filepath.Join(tu.lowers[0], long), "long")
	writeFile(t, filepath.Join(tu.lowers[0], "sub", long), "long in sub")
	writeFile(t, filepath.Join(tu.lowers[0], "sub", "keep"), "keep")
	mkdirAll(t, filepath.Join(tu.lowers[0], "sub", longDir))
	writeFile(t, filepath.Join(tu.lowers[0], "keep"), "keep")
	writeFile(t, filepath.Join(tu.lowers[0], "kd", "inner"), "inner")
	before := testsupport.Fingerprint(t, tu.lowers[0])
	tu.mount(t, nil)

	// In sub first: once the root is opaque, sub lives in the upper alone.
	must(t, syscall.Rmdir(tu.m("sub/"+longDir)))
	must(t, syscall.Rename(tu.m("sub/"+long), tu.m("moved")))
	must(t, syscall.Unlink(tu.m(long)))
	assertTree(t, "merged", tu.mnt, []string{"keep = keep", "kd/", "kd/inner = inner", "moved = long in sub", "sub/", "sub/keep = keep"})
	for _, d := range []string{"", "sub"} {
		if _, err := os.Lstat(filepath.Join(tu.upper, d, whiteout.OpaqueName)); err != nil {
			t.Errorf("upper dir /%s is not opaque: %v", d, err)
		}
	}
	// The names can be used again.
	must(t, os.WriteFile(tu.m(long), []byte("again"), 0o644))
	must(t, syscall.Unlink(tu.m(long)))
	if testsupport.Fingerprint(t, tu.lowers[0]) != before {
		t.Error("lower was modified")
	}
}
