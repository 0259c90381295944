package unionfs

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// testUnion is a mounted union over dirs made by the test.
type testUnion struct {
	lowers []string // top first
	upper  string
	work   string
	mnt    string
}

// newLayers makes n lower dirs, an upper, a workdir and a mountpoint.
func newLayers(t *testing.T, nLowers int) *testUnion {
	t.Helper()
	base := t.TempDir()
	tu := &testUnion{upper: filepath.Join(base, "upper"), work: filepath.Join(base, "work"), mnt: filepath.Join(base, "mnt")}
	for i := 0; i < nLowers; i++ {
		tu.lowers = append(tu.lowers, filepath.Join(base, "lower"+string(rune('0'+i))))
	}
	for _, d := range append([]string{tu.upper, tu.work, tu.mnt}, tu.lowers...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tu
}

// mount mounts the union with cfg adjusted by tweak and unmounts it at cleanup.
func (tu *testUnion) mount(t *testing.T, tweak func(*Config)) {
	t.Helper()
	testsupport.RequireFUSE(t)
	cfg := DefaultConfig()
	cfg.Lowers, cfg.Upper, cfg.Work = tu.lowers, tu.upper, tu.work
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := Mount(tu.mnt, cfg)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	testsupport.UnmountAtCleanup(t, tu.mnt, srv.Unmount)
}

func (tu *testUnion) m(rel string) string { return filepath.Join(tu.mnt, rel) }

// writeFile creates a file (and its parents) in a real dir.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirAll(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// overlayWhiteout makes a kernel-overlay whiteout (char 0/0).
func overlayWhiteout(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mknod(path, unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
}

func assertTree(t *testing.T, what, dir string, want []string) {
	t.Helper()
	got := testsupport.ListTree(t, dir)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s tree:\n got: %q\nwant: %q", what, got, want)
	}
}

// eventually polls cond until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
