package inspect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/unionfs"
)

// union is a set of layer dirs made by a test: lowers top first.
type union struct {
	base, upper, work, mnt string
	lowers                 []string
}

func newUnion(t *testing.T, nLowers int) *union {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	u := &union{base: base, upper: base + "/upper", work: base + "/work", mnt: base + "/mnt"}
	for i := 0; i < nLowers; i++ {
		u.lowers = append(u.lowers, filepath.Join(base, "lower"+string(rune('0'+i))))
	}
	for _, d := range append([]string{u.upper, u.work, u.mnt}, u.lowers...) {
		must(t, os.MkdirAll(d, 0o755))
	}
	return u
}

func (u *union) cfg() unionfs.Config {
	return unionfs.Config{Upper: u.upper, Work: u.work, Lowers: u.lowers}
}

func (u *union) m(rel string) string { return filepath.Join(u.mnt, rel) }

// mountUnionfsd serves the union in-process until fn returns or the test ends.
func (u *union) mountUnionfsd(t *testing.T) (unmount func()) {
	t.Helper()
	testsupport.RequireFUSE(t)
	cfg := unionfs.DefaultConfig()
	cfg.Upper, cfg.Work, cfg.Lowers = u.upper, u.work, u.lowers
	cfg.EntryTimeout, cfg.AttrTimeout, cfg.NegativeTimeout = 0, 0, 0
	cfg.Metacopy = true // the damaged uppers hold metacopy entries
	srv, err := unionfs.Mount(u.mnt, cfg)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	return testsupport.UnmountAtCleanup(t, u.mnt, srv.Unmount)
}

// mountOverlay mounts kernel overlay on the same layers (own workdir) and
// returns the unmount function.
func (u *union) mountOverlay(t *testing.T) (unmount func()) {
	t.Helper()
	testsupport.RequireFUSE(t)
	work := u.base + "/ovl-work"
	must(t, os.MkdirAll(work, 0o755))
	opts := "lowerdir=" + strings.Join(u.lowers, ":") + ",upperdir=" + u.upper + ",workdir=" + work +
		",redirect_dir=off,index=off,metacopy=off,volatile"
	if err := unix.Mount("overlay", u.mnt, "overlay", 0, opts); err != nil {
		t.Skipf("kernel overlay mount failed (modprobe overlay?): %v", err)
	}
	unmountNow := testsupport.UnmountAtCleanup(t, u.mnt, func() error { return unix.Unmount(u.mnt, 0) })
	return func() {
		unmountNow()
		// overlay leaves its work/ subdir behind; it is not part of the test.
		os.RemoveAll(work)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func changeLines(cs []Change) string {
	var lines []string
	for _, c := range cs {
		lines = append(lines, c.String())
	}
	return strings.Join(lines, "\n")
}
