package whiteout

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// nameCases is the table of the naming rules; the fuzz targets start
// from it too.
var nameCases = []struct {
	name, target string
	ok, reserved bool
}{
	{".wh.foo", "foo", true, true},
	{".wh..wh..opq", "", false, true},
	{".wh..wh.unionfsd.work", "", false, true},
	{".wh.", "", false, true},
	{".wh..", "", false, true},
	{".wh....", "...", true, true},
	{".wh...", "", false, true},
	{"foo", "", false, false},
	{"x.wh.foo", "", false, false},
	{".wh", "", false, false},
}

func TestNames(t *testing.T) {
	for _, c := range nameCases {
		target, ok := Target(c.name)
		if target != c.target || ok != c.ok || IsWhiteoutName(c.name) != c.reserved {
			t.Errorf("%q: Target = %q %v, reserved %v; want %q %v %v", c.name, target, ok, IsWhiteoutName(c.name), c.target, c.ok, c.reserved)
		}
	}
	for n, fits := range map[int]bool{1: true, 250: true, 251: true, 252: false, 255: false} {
		name := strings.Repeat("n", n)
		if NameFits(name) != fits {
			t.Errorf("NameFits of a %d-byte name = %v, want %v", n, !fits, fits)
		}
	}
	for name, want := range map[string]bool{".wh..wh..opq": true, ".wh..wh.unionfsd.work": true, ".wh..wh.plnk": true,
		".wh.foo": false, ".wh..": false, ".wh.": false, "x.wh..wh.a": false} {
		if IsReserved(name) != want {
			t.Errorf("IsReserved(%q) = %v, want %v", name, !want, want)
		}
	}
	if Name("a b") != ".wh.a b" || !IsOpaqueMarker(OpaqueName) {
		t.Errorf("Name or IsOpaqueMarker wrong")
	}
}

func TestOverlayFormat(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod and trusted.* xattrs need root: run the suite with sudo")
	}
	dir := t.TempDir()
	wh := filepath.Join(dir, "gone")
	if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "null")
	if err := unix.Mknod(other, unix.S_IFCHR, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	for path, want := range map[string]bool{wh: true, other: false, dir: false} {
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if IsOverlayWhiteout(&st) != want {
			t.Errorf("IsOverlayWhiteout(%s) = %v, want %v", path, !want, want)
		}
	}

	for _, c := range []struct {
		setup func(d string) error
		want  bool
	}{
		{func(d string) error { return nil }, false},
		{func(d string) error { return os.WriteFile(filepath.Join(d, OpaqueName), nil, 0o644) }, true},
		{func(d string) error { return unix.Setxattr(d, TrustedOpaqueXattr, []byte("y"), 0) }, true},
		{func(d string) error { return unix.Setxattr(d, UserOpaqueXattr, []byte("y"), 0) }, true},
		{func(d string) error { return unix.Setxattr(d, FuseOverlayfsOpaqueXattr, []byte("y"), 0) }, true},
		// More xattr names than one listxattr buffer holds, then the mark.
		{func(d string) error {
			for i := 0; i < 20; i++ {
				if err := unix.Setxattr(d, fmt.Sprintf("user.some-long-attribute-name-%02d", i), []byte("v"), 0); err != nil {
					return err
				}
			}
			return unix.Setxattr(d, TrustedOpaqueXattr, []byte("y"), 0)
		}, true},
		// "x" marks a dir that merely holds whiteouts (newer kernels): not opaque.
		{func(d string) error { return unix.Setxattr(d, TrustedOpaqueXattr, []byte("x"), 0) }, false},
	} {
		d := t.TempDir()
		if err := c.setup(d); err != nil {
			t.Fatal(err)
		}
		if got, err := IsOpaqueDir(d); err != nil || got != c.want {
			t.Errorf("IsOpaqueDir = %v %v, want %v", got, err, c.want)
		}
		// The same by an O_PATH descriptor (the marker file aside).
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		xattrMark, _ := HasOpaqueXattr(d)
		if got, err := HasOpaqueXattrFd(fd); err != nil || got != xattrMark {
			t.Errorf("HasOpaqueXattrFd = %v %v, HasOpaqueXattr %v", got, err, xattrMark)
		}
		unix.Close(fd)
	}
	for _, x := range []string{"trusted.overlay.opaque", "user.overlay.redirect", "user.unionfsd.metacopy", "trusted.unionfsd.metacopy", "user.fuseoverlayfs.opaque"} {
		if !IsInternalXattr(x) {
			t.Errorf("%s should be internal", x)
		}
	}
	if IsInternalXattr("user.mime_type") || IsInternalXattr("security.capability") {
		t.Errorf("ordinary xattrs are not internal")
	}
}
