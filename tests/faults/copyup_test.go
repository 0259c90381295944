package faults

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestCopyUpENOSPC opens a lower file bigger than the space left in the
// upper for appending: the copy-up must fail with ENOSPC and leave the
// lower content visible, no file in the upper and nothing in the workdir;
// once space is back the same open and append succeed.
func TestCopyUpENOSPC(t *testing.T) {
	testsupport.RequireFUSE(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fsRoot := b.mount(t, 8<<20)
			lower := filepath.Join(t.TempDir(), "lower")
			big := randomBytes(1, 3<<20)
			writeFile(t, filepath.Join(lower, "dir", "big"), big)
			writeFile(t, filepath.Join(lower, "dir", "small"), []byte("small"))
			u := mountUnion(t, lower, filepath.Join(fsRoot, "upper"), filepath.Join(fsRoot, "work"))
			lowerBefore, mergedBefore := tree(t, lower), tree(t, u.mnt)
			filler := fill(t, fsRoot, 1<<20)

			err := timed(20*time.Second, func() error { return appendTo(u.m("dir/big"), "tail") })
			assertErrno(t, "append to a 3 MiB lower file with 1 MiB free", err, syscall.ENOSPC)

			assertSameTree(t, "merged view after the failed copy-up", tree(t, u.mnt), mergedBefore)
			if _, err := os.Lstat(filepath.Join(u.upper, "dir", "big")); !os.IsNotExist(err) {
				t.Errorf("upper holds dir/big after the failed copy-up (lstat: %v)", err)
			}
			assertNoStaging(t, u.work)
			u.assertServing(t)
			u.assertWritable(t)

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			within(t, 20*time.Second, "append once space is back", func() error { return appendTo(u.m("dir/big"), "tail") })
			want := append(append([]byte(nil), big...), "tail"...)
			if got := readFile(t, u.m("dir/big")); !bytes.Equal(got, want) {
				t.Errorf("merged dir/big after the append: %d bytes, want %d", len(got), len(want))
			}
			if got := readFile(t, filepath.Join(u.upper, "dir", "big")); !bytes.Equal(got, want) {
				t.Errorf("upper dir/big after the append: %d bytes, want %d", len(got), len(want))
			}
			assertNoStaging(t, u.work)
			assertSameTree(t, "lower", tree(t, lower), lowerBefore)
		})
	}
}

// appendTo opens p for read-write appending (the open copies it up) and
// appends s.
func appendTo(p, s string) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
