package unionfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// shortTimeouts makes the kernel's caches, and with them the directory
// cache, expire quickly.
func shortTimeouts(c *Config) {
	c.EntryTimeout, c.AttrTimeout, c.NegativeTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
}

// pastTimeouts waits until entries cached under shortTimeouts expired.
func pastTimeouts() { time.Sleep(400 * time.Millisecond) }

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestCachedDirAfterDirectChange changes directories directly in the upper
// and a lower layer after the mount used them (so their descriptors are
// cached): renamed away and replaced by a new directory, or removed. Once
// the kernel's entries time out, operations through the mount must act on
// what the layer holds now, not on the directory that moved away.
func TestCachedDirAfterDirectChange(t *testing.T) {
	tu := newLayers(t, 1)
	mkdirAll(t, filepath.Join(tu.lowers[0], "l"))
	writeFile(t, filepath.Join(tu.lowers[0], "l", "x"), "old lower")
	tu.mount(t, shortTimeouts)

	// Replaced by a new directory.
	must(t, os.Mkdir(tu.m("d"), 0o755))
	writeFile(t, tu.m("d/a"), "a")
	must(t, os.Rename(filepath.Join(tu.upper, "d"), filepath.Join(tu.upper, "d-old")))
	must(t, os.Mkdir(filepath.Join(tu.upper, "d"), 0o755))
	pastTimeouts()
	writeFile(t, tu.m("d/b"), "b")
	if !exists(filepath.Join(tu.upper, "d", "b")) || exists(filepath.Join(tu.upper, "d-old", "b")) {
		t.Errorf("d/b created in the directory that was renamed away: upper holds %v", testsupport.ListTree(t, tu.upper))
	}
	if exists(tu.m("d/a")) {
		t.Errorf("d/a still shows after d was replaced")
	}

	// Removed.
	must(t, os.Mkdir(tu.m("e"), 0o755))
	writeFile(t, tu.m("e/a"), "a")
	must(t, os.RemoveAll(filepath.Join(tu.upper, "e")))
	pastTimeouts()
	err := os.WriteFile(tu.m("e/b"), []byte("b"), 0o644)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("creating e/b after e was removed in the upper: %v, want ENOENT", err)
	}

	// A lower directory replaced: its new entries show, the old ones not.
	if got := readFile(t, tu.m("l/x")); got != "old lower" {
		t.Fatalf("l/x = %q", got)
	}
	must(t, os.Rename(filepath.Join(tu.lowers[0], "l"), filepath.Join(tu.lowers[0], "l-old")))
	mkdirAll(t, filepath.Join(tu.lowers[0], "l"))
	writeFile(t, filepath.Join(tu.lowers[0], "l", "y"), "new lower")
	pastTimeouts()
	if exists(tu.m("l/x")) || !exists(tu.m("l/y")) {
		t.Errorf("after l was replaced in the lower: l/x shows %v, l/y shows %v", exists(tu.m("l/x")), exists(tu.m("l/y")))
	}
}

// TestCachedDirSwappedForSymlink swaps a used upper directory for a symlink
// to a directory outside the layers, directly in the upper, while the
// kernel still holds the name as a directory (long timeouts): creating in
// it through the mount may reach the directory that moved away (inside the
// layer) or fail, but never the symlink's target, both while the cached
// descriptor serves and after it expired.
func TestCachedDirSwappedForSymlink(t *testing.T) {
	tu := newLayers(t, 1)
	victim := filepath.Join(filepath.Dir(tu.upper), "victim")
	mkdirAll(t, victim)
	tu.mount(t, func(c *Config) {
		c.EntryTimeout, c.AttrTimeout, c.NegativeTimeout = time.Minute, time.Minute, time.Minute
	})
	must(t, os.Mkdir(tu.m("d"), 0o755))
	writeFile(t, tu.m("d/a"), "a")
	must(t, os.Rename(filepath.Join(tu.upper, "d"), filepath.Join(tu.upper, "d2")))
	must(t, os.Symlink(victim, filepath.Join(tu.upper, "d")))
	os.WriteFile(tu.m("d/b"), []byte("b"), 0o644) // may fail or land in d2
	time.Sleep(maxDirTTL + 200*time.Millisecond)
	if err := os.WriteFile(tu.m("d/c"), []byte("c"), 0o644); err == nil {
		t.Errorf("creating d/c after the cached descriptor expired succeeded")
	}
	if got := testsupport.ListTree(t, victim); len(got) != 0 {
		t.Errorf("created outside the layers: %v (upper %v)", got, testsupport.ListTree(t, tu.upper))
	}
}

// TestCachedDirAfterRenameAndRmdir reuses a directory's name right after a
// rename or rmdir through the mount: the new directory must get what is
// created in it, not the one the cached descriptor still holds.
func TestCachedDirAfterRenameAndRmdir(t *testing.T) {
	tu := newLayers(t, 1)
	mkdirAll(t, filepath.Join(tu.lowers[0], "low"))
	writeFile(t, filepath.Join(tu.lowers[0], "low", "x"), "x")
	tu.mount(t, nil)

	must(t, os.Mkdir(tu.m("p"), 0o755))
	writeFile(t, tu.m("p/a"), "a")
	must(t, os.Rename(tu.m("p"), tu.m("q")))
	must(t, os.Mkdir(tu.m("p"), 0o755))
	writeFile(t, tu.m("p/b"), "b")
	if !exists(filepath.Join(tu.upper, "p", "b")) || exists(filepath.Join(tu.upper, "q", "b")) {
		t.Errorf("p/b after renaming p to q: upper holds %v", testsupport.ListTree(t, tu.upper))
	}

	must(t, os.Remove(tu.m("p/b")))
	must(t, os.Remove(tu.m("p")))
	must(t, os.Mkdir(tu.m("p"), 0o755))
	writeFile(t, tu.m("p/c"), "c")
	if !exists(filepath.Join(tu.upper, "p", "c")) {
		t.Errorf("p/c after rmdir and mkdir of p: upper holds %v", testsupport.ListTree(t, tu.upper))
	}

	// A merged directory removed and made again is opaque: the lower
	// entries stay hidden, whatever was cached for the lower dir.
	writeFile(t, tu.m("low/y"), "y")
	must(t, os.Remove(tu.m("low/x")))
	must(t, os.Remove(tu.m("low/y")))
	must(t, os.Remove(tu.m("low")))
	must(t, os.Mkdir(tu.m("low"), 0o755))
	writeFile(t, tu.m("low/z"), "z")
	if exists(tu.m("low/x")) || !exists(filepath.Join(tu.upper, "low", "z")) {
		t.Errorf("low after rmdir and mkdir: mount %v, upper %v", testsupport.ListTree(t, tu.mnt), testsupport.ListTree(t, tu.upper))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
