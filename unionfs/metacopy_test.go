package unionfs

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/metacopy"
	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestMetacopy checks metadata-only copy-up: chown/chmod/utimes/xattr put
// no data in the upper, reads still see the lower data, sizes stay right,
// and the first write copies the data in.
func TestMetacopy(t *testing.T) {
	tu := newLayers(t, 1)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	writeFile(t, tu.lowers[0]+"/big", string(data))
	writeFile(t, tu.lowers[0]+"/d/small", "small")
	before := testsupport.Fingerprint(t, tu.lowers[0])
	tu.mount(t, func(c *Config) { c.Metacopy = true })

	var lowerSt, st, up syscall.Stat_t
	must(t, syscall.Lstat(tu.lowers[0]+"/big", &lowerSt))
	must(t, os.Lchown(tu.m("big"), 1000, 1000))
	must(t, os.Chmod(tu.m("d/small"), 0o600))
	must(t, unix.Setxattr(tu.m("d/small"), "user.k", []byte("v"), 0))

	must(t, syscall.Lstat(tu.upper+"/big", &up))
	if up.Blocks != 0 || up.Size != int64(len(data)) {
		t.Errorf("upper big: %d blocks, size %d: want a hole of %d bytes", up.Blocks, up.Size, len(data))
	}
	if v, ok := readPointer(t, tu.upper+"/big"); !ok || v != "big" {
		t.Errorf("metacopy xattr = %q %v", v, ok)
	}
	must(t, syscall.Lstat(tu.m("big"), &st))
	if st.Uid != 1000 || st.Size != lowerSt.Size || st.Blocks != lowerSt.Blocks {
		t.Errorf("merged big: uid %d size %d blocks %d; want 1000, %d, %d", st.Uid, st.Size, st.Blocks, lowerSt.Size, lowerSt.Blocks)
	}
	if got, _ := os.ReadFile(tu.m("big")); !bytes.Equal(got, data) {
		t.Errorf("merged big reads %d bytes, not the lower data", len(got))
	}
	if _, err := unix.Lgetxattr(tu.m("big"), metacopy.Xattr(), nil); err == nil {
		t.Errorf("the metacopy xattr shows through the mount")
	}
	if got, _ := os.ReadFile(tu.m("d/small")); string(got) != "small" {
		t.Errorf("d/small reads %q", got)
	}

	// The first write completes the copy; metadata set before stays.
	f, err := os.OpenFile(tu.m("big"), os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("XY"), 0)
	must(t, err)
	must(t, f.Close())
	must(t, syscall.Lstat(tu.upper+"/big", &up))
	if up.Blocks == 0 || up.Uid != 1000 {
		t.Errorf("after write, upper big has %d blocks, uid %d", up.Blocks, up.Uid)
	}
	if _, ok := readPointer(t, tu.upper+"/big"); ok {
		t.Errorf("completed copy still carries the metacopy xattr")
	}
	got, _ := os.ReadFile(tu.m("big"))
	want := append([]byte("XY"), data[2:]...)
	if !bytes.Equal(got, want) {
		t.Errorf("after write the merged file differs from the expected data")
	}
	// Truncation completes a copy too, with only the bytes that survive.
	must(t, os.Truncate(tu.m("d/small"), 2))
	if got, _ := os.ReadFile(tu.m("d/small")); string(got) != "sm" {
		t.Errorf("truncated d/small reads %q", got)
	}
	if testsupport.Fingerprint(t, tu.lowers[0]) != before {
		t.Errorf("the lower layer was modified")
	}
}

// TestMetacopyOff checks the default: a chown copies the data.
func TestMetacopyOff(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "data")
	tu.mount(t, nil)
	must(t, os.Lchown(tu.m("f"), 1000, 1000))
	if got, _ := os.ReadFile(tu.upper + "/f"); string(got) != "data" {
		t.Errorf("upper f = %q, want a full copy", got)
	}
}

// TestMetacopyWithXattrs covers small files whose xattrs take a block of
// their own: the metacopy entry then has blocks, and must still be found.
func TestMetacopyWithXattrs(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/a", "adata!")
	must(t, unix.Lsetxattr(tu.lowers[0]+"/a", "user.t", bytes.Repeat([]byte("x"), 3000), 0))
	tu.mount(t, func(c *Config) { c.Metacopy = true })
	must(t, os.Rename(tu.m("a"), tu.m("b")))
	if _, ok := readPointer(t, tu.upper+"/b"); !ok {
		t.Fatalf("rename did not make a metadata-only copy")
	}
	if got, _ := os.ReadFile(tu.m("b")); string(got) != "adata!" {
		t.Errorf("b reads %q, want the lower data", got)
	}
}

// readPointer returns the metacopy pointer on the upper file p.
func readPointer(t *testing.T, p string) (string, bool) {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	ptr, err := metacopy.Read(p, st.Mode, st.Size)
	must(t, err)
	return ptr.Rel, ptr.Present
}
