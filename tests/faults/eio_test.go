package faults

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// eioLower makes the lower layer the EIO tests work on: a big file, a
// small one and a tree of files.
func eioLower(t *testing.T) string {
	t.Helper()
	lower := filepath.Join(t.TempDir(), "lower")
	writeFile(t, filepath.Join(lower, "dir", "big"), randomBytes(1, 1<<20))
	writeFile(t, filepath.Join(lower, "dir", "small"), []byte("small\n"))
	for i := 0; i < 6; i++ {
		writeFile(t, filepath.Join(lower, "tree", fmt.Sprintf("f%d", i)), randomBytes(int64(30+i), 128<<10))
		writeFile(t, filepath.Join(lower, "tree", "sub", fmt.Sprintf("g%d", i)), randomBytes(int64(40+i), 32<<10))
	}
	return lower
}

// opsUnderFault are the operations the EIO tests make fail and then redo.
var opsUnderFault = []struct {
	name string
	do   func(u *union) error
}{
	{"copy-up for append", func(u *union) error { return appendTo(u.m("dir/big"), "tail") }},
	{"create", func(u *union) error { return os.WriteFile(u.m("dir/new"), []byte("new\n"), 0o644) }},
	{"mkdir", func(u *union) error { return os.Mkdir(u.m("newdir"), 0o755) }},
	{"remove a lower file", func(u *union) error { return os.Remove(u.m("dir/small")) }},
	{"chmod (metadata copy-up)", func(u *union) error { return os.Chmod(u.m("tree/f0"), 0o600) }},
	{"rename a lower tree", func(u *union) error { return os.Rename(u.m("tree"), u.m("moved")) }},
}

// TestEIOBrokenUpper puts the upper on a file system whose every write
// fails with EIO. Each operation must return EIO promptly, change nothing
// in the merged view, leave nothing in the upper or the workdir, and the
// daemon must keep serving reads; once the file system works again every
// operation succeeds.
func TestEIOBrokenUpper(t *testing.T) {
	testsupport.RequireFUSE(t)
	ff := mountFaultFS(t)
	lower := eioLower(t)
	u := mountUnion(t, lower, filepath.Join(ff.mnt, "upper"), filepath.Join(ff.mnt, "work"))
	lowerBefore, mergedBefore := tree(t, lower), tree(t, u.mnt)

	ff.breakWrites()
	for _, op := range opsUnderFault {
		err := timed(10*time.Second, func() error { return op.do(u) })
		assertErrno(t, op.name+" on a broken upper", err, syscall.EIO)
	}
	assertSameTree(t, "merged view after the failed operations", tree(t, u.mnt), mergedBefore)
	assertSameTree(t, "upper after the failed operations", tree(t, u.upper), map[string]string{})
	assertNoStaging(t, u.work)
	u.assertServing(t)

	ff.heal()
	for _, op := range opsUnderFault {
		within(t, 10*time.Second, op.name+" once the upper works", func() error { return op.do(u) })
	}
	assertHealedView(t, u, mergedBefore)
	assertNoStaging(t, u.work)
	assertSameTree(t, "lower", tree(t, lower), lowerBefore)
}

// TestEIOFlakyUpper lets part of the data through before every data write
// fails, so that copies break off in the middle of a file: the copy-up of
// a big file and the whole-tree copy of a directory rename. Both must fail
// with EIO, show the lower content unchanged and leave only complete
// copies in the upper; once writes work again both succeed.
func TestEIOFlakyUpper(t *testing.T) {
	testsupport.RequireFUSE(t)
	ff := mountFaultFS(t)
	lower := eioLower(t)
	u := mountUnion(t, lower, filepath.Join(ff.mnt, "upper"), filepath.Join(ff.mnt, "work"))
	lowerBefore, mergedBefore := tree(t, lower), tree(t, u.mnt)

	for _, op := range opsUnderFault {
		if op.name != "copy-up for append" && op.name != "rename a lower tree" {
			continue
		}
		ff.failDataAfter(400 << 10) // the tree holds 960 KiB, big 1 MiB
		err := timed(10*time.Second, func() error { return op.do(u) })
		assertErrno(t, op.name+" with writes failing after 400 KiB", err, syscall.EIO)
		assertSameTree(t, "merged view after "+op.name+" failed", tree(t, u.mnt), mergedBefore)
		assertCompleteCopies(t, lower, u.upper)
		assertNoStaging(t, u.work)
		u.assertServing(t)
		ff.heal()
	}
	u.assertWritable(t)
	within(t, 10*time.Second, "append once writes work", func() error { return appendTo(u.m("dir/big"), "tail") })
	within(t, 10*time.Second, "rename once writes work", func() error { return os.Rename(u.m("tree"), u.m("moved")) })
	want := renamed(mergedBefore, "tree", "moved")
	big := append(randomBytes(1, 1<<20), "tail"...)
	want["dir/big"] = fmt.Sprintf("file %d %s", len(big), sum(big))
	assertSameTree(t, "merged view once writes work", tree(t, u.mnt), want)
	assertNoStaging(t, u.work)
	assertSameTree(t, "lower", tree(t, lower), lowerBefore)
}

// assertHealedView checks the merged view after every op of opsUnderFault
// succeeded on a view that was before.
func assertHealedView(t *testing.T, u *union, before map[string]string) {
	t.Helper()
	want := renamed(before, "tree", "moved")
	big := append(randomBytes(1, 1<<20), "tail"...)
	want["dir/big"] = fmt.Sprintf("file %d %s", len(big), sum(big))
	want["dir/new"] = fmt.Sprintf("file 4 %s", sum([]byte("new\n")))
	want["newdir"] = "dir"
	delete(want, "dir/small")
	assertSameTree(t, "merged view once the upper works", tree(t, u.mnt), want)
	st, err := os.Stat(u.m("moved/f0"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("moved/f0 after chmod 600: %v %v", st.Mode(), err)
	}
	if !bytes.Equal(readFile(t, u.m("moved/f0")), randomBytes(30, 128<<10)) {
		t.Errorf("moved/f0 lost its content")
	}
}

// renamed returns a copy of a tree with the subtree at from moved to to.
func renamed(in map[string]string, from, to string) map[string]string {
	out := map[string]string{}
	for p, v := range in {
		if p == from {
			out[to] = v
		} else if rel, ok := strings.CutPrefix(p, from+"/"); ok {
			out[to+"/"+rel] = v
		} else {
			out[p] = v
		}
	}
	return out
}
