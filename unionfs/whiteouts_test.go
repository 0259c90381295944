package unionfs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestOverlayUpperFormat writes the upper in kernel-overlay format, then
// lets kernel overlay itself read that upper as a layer: it must show the
// same tree as the unionfsd mount did.
func TestOverlayUpperFormat(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/gone", "g")
	writeFile(t, tu.lowers[0]+"/d/old", "o")
	writeFile(t, tu.lowers[0]+"/e/keep", "k")
	writeFile(t, tu.lowers[0]+"/f", "f")
	tu.mount(t, func(c *Config) { c.WhiteoutFormat = WhiteoutOverlay })
	must(t, os.Remove(tu.m("gone")))
	must(t, os.RemoveAll(tu.m("d")))
	must(t, os.Mkdir(tu.m("d"), 0o755))
	must(t, os.WriteFile(tu.m("d/new"), []byte("n"), 0o644))
	must(t, os.Rename(tu.m("f"), tu.m("e/f2")))
	merged := testsupport.ListTree(t, tu.mnt)

	var st syscall.Stat_t
	must(t, syscall.Lstat(tu.upper+"/gone", &st))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upper/gone is mode %o rdev %d, want a 0/0 char device", st.Mode, st.Rdev)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(tu.upper+"/d", "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("upper/d opaque xattr: %q %v", buf[:n], err)
	}
	for _, p := range []string{".wh.gone", "d/.wh..wh..opq", ".wh.f"} {
		if _, err := os.Lstat(filepath.Join(tu.upper, p)); err == nil {
			t.Errorf("OCI marker %s written in overlay format", p)
		}
	}

	ovl := filepath.Join(t.TempDir(), "ovl")
	must(t, os.Mkdir(ovl, 0o755))
	must(t, unix.Mount("overlay", ovl, "overlay", unix.MS_RDONLY, "lowerdir="+tu.upper+":"+tu.lowers[0]))
	t.Cleanup(func() { unix.Unmount(ovl, unix.MNT_DETACH) })
	// The workdir is outside the upper here, so the trees must be equal.
	assertTree(t, "kernel overlay over the upper", ovl, merged)
}
