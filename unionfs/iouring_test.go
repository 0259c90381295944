package unionfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/unionfsd/unionfsd/internal/fuseuring"
	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// setIoUring sets the fuse module's machine-wide enable_uring parameter for
// the test and restores it after; it skips when the kernel or user cannot.
func setIoUring(t *testing.T, on bool) {
	t.Helper()
	restore, err := fuseuring.Set(on)
	if err != nil {
		t.Skipf("%v: io_uring=on not tested here", err)
	}
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Error(err)
		}
	})
}

// mountServer mounts tu with cfg's IoUring set to mode and returns the server.
func (tu *testUnion) mountServer(t *testing.T, mode string) (*fuse.Server, error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Lowers, cfg.Upper, cfg.Work = tu.lowers, tu.upper, tu.work
	cfg.IoUring = mode
	srv, err := Mount(tu.mnt, cfg)
	if err != nil {
		return nil, err
	}
	testsupport.UnmountAtCleanup(t, tu.mnt, srv.Unmount)
	return srv, nil
}

// exerciseUnion reads a lower file, copies it up, creates, renames, lists and
// removes, checking the results.
func exerciseUnion(t *testing.T, tu *testUnion) {
	t.Helper()
	data, err := os.ReadFile(tu.m("a"))
	if err != nil || string(data) != "lower\n" {
		t.Fatalf("read lower file: %q, %v", data, err)
	}
	f, err := os.OpenFile(tu.m("a"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("upper\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mkdirAll(t, tu.m("d/e"))
	writeFile(t, tu.m("d/e/new"), "new\n")
	if err := os.Rename(tu.m("d/e/new"), tu.m("d/renamed")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tu.m("b")); err != nil {
		t.Fatal(err)
	}
	assertTree(t, "merged", tu.mnt, []string{"a = lower\nupper\n", "d/", "d/e/", "d/renamed = new\n"})
	if data, err := os.ReadFile(filepath.Join(tu.upper, "a")); err != nil || string(data) != "lower\nupper\n" {
		t.Errorf("upper copy of a: %q, %v", data, err)
	}
}

func newIoUringLayers(t *testing.T) *testUnion {
	tu := newLayers(t, 1)
	writeFile(t, filepath.Join(tu.lowers[0], "a"), "lower\n")
	writeFile(t, filepath.Join(tu.lowers[0], "b"), "gone\n")
	return tu
}

// TestIoUringOn: with io_uring=on the requests really travel over the ring.
func TestIoUringOn(t *testing.T) {
	testsupport.RequireFUSE(t)
	setIoUring(t, true)
	tu := newIoUringLayers(t)
	srv, err := tu.mountServer(t, IoUringOn)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	before, err := srv.IoUring()
	if err != nil {
		t.Fatalf("io_uring=on mounted without io_uring: %v", err)
	}
	exerciseUnion(t, tu)
	after, _ := srv.IoUring()
	// Each step above is several requests (LOOKUP, OPEN, READ, WRITE,
	// FLUSH, RELEASE, MKDIR, CREATE, RENAME, UNLINK, READDIRPLUS, ...).
	if after-before < 20 {
		t.Errorf("%d requests served over io_uring, want at least 20", after-before)
	}
	t.Logf("%d requests over io_uring", after-before)
}

// TestIoUringUnavailable: with the kernel's switch off, io_uring=on refuses
// to mount and says why, auto falls back to /dev/fuse.
func TestIoUringUnavailable(t *testing.T) {
	testsupport.RequireFUSE(t)
	setIoUring(t, false)
	tu := newIoUringLayers(t)
	if _, err := tu.mountServer(t, IoUringOn); err == nil || !strings.Contains(err.Error(), "io_uring") {
		t.Fatalf("io_uring=on with the kernel switch off: got %v, want an io_uring error", err)
	}
	srv, err := tu.mountServer(t, IoUringAuto)
	if err != nil {
		t.Fatalf("io_uring=auto: %v", err)
	}
	exerciseUnion(t, tu)
	if n, err := srv.IoUring(); err == nil || n != 0 {
		t.Errorf("io_uring=auto with the kernel switch off: %d requests over io_uring (err %v), want none", n, err)
	}
}
