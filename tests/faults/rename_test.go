package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestRenameDirENOSPC renames a lower directory whose files do not fit in
// the space left in the upper. unionfsd copies such a directory up whole
// (it never answers EXDEV), so the rename must fail with ENOSPC and leave
// the merged view as it was: the old name with all its content, no new
// name. What the upper holds by then must be complete copies of lower
// files only. Once space is back the same rename succeeds.
func TestRenameDirENOSPC(t *testing.T) {
	testsupport.RequireFUSE(t)
	fsRoot := mountTmpfs(t, 8<<20)
	lower := filepath.Join(t.TempDir(), "lower")
	for i := 0; i < 8; i++ {
		writeFile(t, filepath.Join(lower, "tree", fmt.Sprintf("f%d", i)), randomBytes(int64(10+i), 256<<10))
		writeFile(t, filepath.Join(lower, "tree", "sub", fmt.Sprintf("g%d", i)), randomBytes(int64(20+i), 128<<10))
	}
	if err := os.Symlink("f0", filepath.Join(lower, "tree", "link")); err != nil {
		t.Fatal(err)
	}
	u := mountUnion(t, lower, filepath.Join(fsRoot, "upper"), filepath.Join(fsRoot, "work"))
	lowerBefore, mergedBefore := tree(t, lower), tree(t, u.mnt)
	filler := fill(t, fsRoot, 1<<20) // the tree holds 3 MiB

	err := timed(20*time.Second, func() error { return os.Rename(u.m("tree"), u.m("moved")) })
	if err == nil {
		t.Fatal("rename of a 3 MiB lower tree with 1 MiB free succeeded")
	}
	assertErrno(t, "rename of a lower tree that does not fit", err, syscall.ENOSPC)
	assertSameTree(t, "merged view after the failed rename", tree(t, u.mnt), mergedBefore)
	assertCompleteCopies(t, lower, u.upper)
	if _, err := os.Lstat(filepath.Join(u.upper, "moved")); !os.IsNotExist(err) {
		t.Errorf("upper holds the new name after the failed rename (lstat: %v)", err)
	}
	assertNoStaging(t, u.work)
	// No write probe: the files copied up before the space ran out stay in
	// the upper (complete, and the same as the lower ones), so the file
	// system is still full.
	u.assertServing(t)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	within(t, 20*time.Second, "rename once space is back", func() error { return os.Rename(u.m("tree"), u.m("moved")) })
	assertSameTree(t, "merged view after the rename", tree(t, u.mnt), renamed(mergedBefore, "tree", "moved"))
	assertNoStaging(t, u.work)
	assertSameTree(t, "lower", tree(t, lower), lowerBefore)
}

// assertCompleteCopies checks that every regular file in upper is a
// byte-for-byte copy of the lower file of the same name: a failed
// operation may have copied some files up, never part of one, and made no
// whiteout.
func assertCompleteCopies(t *testing.T, lower, upper string) {
	t.Helper()
	lowerTree := tree(t, lower)
	for p, v := range tree(t, upper) {
		if v == "dir" {
			continue
		}
		// A whiteout or a partial file shows here as a name or a
		// content that no lower has.
		if lv, ok := lowerTree[p]; !ok {
			t.Errorf("upper holds %s (%s), which no lower has", p, v)
		} else if v != lv {
			t.Errorf("upper %s is %s, lower %s", p, v, lv)
		}
	}
}
