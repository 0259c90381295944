package layers_test

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
	"golang.org/x/sys/unix"
)

// These tests cover the shortcuts of the extraction fast path: the cached
// parent directory, create-then-clear for taken names, and the fchown and
// fchmod skipped when a new file already has the right owner and mode.

func extractEntries(t *testing.T, dir string, entries ...imagetest.Entry) error {
	t.Helper()
	data, err := imagetest.TarEntries(entries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = layers.Extract(bytes.NewReader(data), dir, layers.ExtractOptions{AsRoot: isRoot()})
	return err
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestExtractModesDespiteUmask(t *testing.T) {
	old := unix.Umask(0o027) // removes bits tar modes below ask for
	defer unix.Umask(old)
	dir := t.TempDir()
	modes := map[string]int64{"f666": 0o666, "f777": 0o777, "f644": 0o644, "f600": 0o600, "f000": 0o000, "f444": 0o444, "f1755": 0o1755}
	if isRoot() {
		modes["f4755"], modes["f2711"], modes["f6750"] = 0o4755, 0o2711, 0o6750
	}
	var entries []imagetest.Entry
	for name, m := range modes {
		entries = append(entries, imagetest.File("d/"+name, "data of "+name, m))
	}
	if err := extractEntries(t, dir, entries...); err != nil {
		t.Fatal(err)
	}
	for name, m := range modes {
		p := filepath.Join(dir, "d", name)
		if got := lstat(t, p).Mode & 0o7777; got != uint32(m) {
			t.Errorf("%s: mode %o, want %o", name, got, m)
		}
		if data, err := os.ReadFile(p); err != nil || string(data) != "data of "+name {
			t.Errorf("%s: content %q, %v", name, data, err)
		}
	}
}

func TestExtractOwners(t *testing.T) {
	if !isRoot() {
		t.Skip("setting owners needs root: run the tests as root to cover this")
	}
	for _, setgidRoot := range []bool{false, true} {
		dir := t.TempDir()
		if setgidRoot {
			// New files in a setgid directory get its group, not ours.
			if err := os.Chown(dir, 0, 4242); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755|os.ModeSetgid); err != nil {
				t.Fatal(err)
			}
		}
		owners := map[string][2]int{"root": {0, 0}, "user": {1000, 1000}, "mixed": {0, 42}, "other": {42, 0}}
		var entries []imagetest.Entry
		for name, o := range owners {
			entries = append(entries, imagetest.File(name, name, 0o644).WithOwner(o[0], o[1]))
			entries = append(entries, imagetest.File("sub/"+name, name, 0o644).WithOwner(o[0], o[1]))
		}
		if err := extractEntries(t, dir, entries...); err != nil {
			t.Fatal(err)
		}
		for name, o := range owners {
			for _, p := range []string{name, "sub/" + name} {
				st := lstat(t, filepath.Join(dir, p))
				if int(st.Uid) != o[0] || int(st.Gid) != o[1] {
					t.Errorf("setgid root %v: %s owned by %d:%d, want %d:%d", setgidRoot, p, st.Uid, st.Gid, o[0], o[1])
				}
			}
		}
	}
}

// posixACL encodes a POSIX ACL xattr value (version 2).
func posixACL(entries ...[2]uint16) string {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(2))
	for _, e := range entries {
		binary.Write(&b, binary.LittleEndian, e[0]) // tag
		binary.Write(&b, binary.LittleEndian, e[1]) // perm
		binary.Write(&b, binary.LittleEndian, uint32(0xffffffff))
	}
	return b.String()
}

func TestExtractModesUnderDefaultACL(t *testing.T) {
	if !isRoot() {
		t.Skip("system.* xattrs from a layer are applied as root only: run the tests as root to cover this")
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	// A default ACL denying "other" everything: new files below get o= from
	// it, whatever their create mode and the umask say.
	acl := posixACL([2]uint16{0x01, 7}, [2]uint16{0x04, 7}, [2]uint16{0x20, 0})
	dir := t.TempDir()
	var warned []string
	data, err := imagetest.TarEntries([]imagetest.Entry{
		imagetest.Dir("acl", 0o755).WithXattr("system.posix_acl_default", acl),
		imagetest.File("acl/f", "x", 0o644),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = layers.Extract(bytes.NewReader(data), dir, layers.ExtractOptions{AsRoot: true, Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warned) > 0 {
		t.Skipf("the filesystem of %s refused the default ACL (%s): run the tests on one with POSIX ACLs", dir, warned[0])
	}
	if got := lstat(t, filepath.Join(dir, "acl/f")).Mode & 0o7777; got != 0o644 {
		t.Errorf("file under a default ACL: mode %o, want 0644", got)
	}
}

func TestExtractLaterEntriesWin(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	err := extractEntries(t, dir,
		imagetest.File("f", "first", 0o644),
		imagetest.File("f", "second", 0o600),
		imagetest.File("s", "file", 0o644),
		imagetest.Symlink("s", "f"),
		imagetest.Symlink("t", outside+"/victim"),
		imagetest.File("t", "not through the link", 0o644),
		imagetest.File("h", "old", 0o644),
		imagetest.Hardlink("h", "f"),
		imagetest.File("p", "file", 0o644),
		imagetest.Device("p", tar.TypeFifo, 0, 0),
		imagetest.Dir("d/sub", 0o755),
		imagetest.File("d/sub/x", "x", 0o644),
		imagetest.File("d", "a file now", 0o644),
	)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return "error: " + err.Error()
		}
		return string(b)
	}
	if got := read("f"); got != "second" {
		t.Errorf("f = %q", got)
	}
	if got := lstat(t, filepath.Join(dir, "f")).Mode & 0o777; got != 0o600 {
		t.Errorf("f mode %o", got)
	}
	if l, err := os.Readlink(filepath.Join(dir, "s")); err != nil || l != "f" {
		t.Errorf("s: %q %v", l, err)
	}
	if got := read("t"); got != "not through the link" || lstat(t, filepath.Join(dir, "t")).Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("t = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(outside, "victim")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("written through a symlink: %v", err)
	}
	if a, b := lstat(t, filepath.Join(dir, "h")), lstat(t, filepath.Join(dir, "f")); a.Ino != b.Ino {
		t.Errorf("h is not a hardlink of f")
	}
	if lstat(t, filepath.Join(dir, "p")).Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("p is not a fifo")
	}
	if got := read("d"); got != "a file now" {
		t.Errorf("d = %q", got)
	}
}

// The parent cache must not outlive the directory it names.
func TestExtractParentReplaced(t *testing.T) {
	outside := t.TempDir()
	cases := []struct {
		name    string
		entries []imagetest.Entry
		wantErr string // "" = success
		check   func(t *testing.T, dir string)
	}{
		{"dir-then-symlink", []imagetest.Entry{
			imagetest.File("a/b/one", "1", 0o644),
			imagetest.Symlink("a", outside),
			imagetest.File("a/b/two", "2", 0o644),
		}, `entry "a/b/two": parent "a/b" is or goes through a symlink`, nil},
		{"dir-then-file", []imagetest.Entry{
			imagetest.File("a/b/one", "1", 0o644),
			imagetest.File("a", "file", 0o644),
			imagetest.File("a/b/two", "2", 0o644),
		}, `entry "a/b/two": parent "a/b" is not a directory`, nil},
		{"dir-then-file-then-dir", []imagetest.Entry{
			imagetest.File("a/b/one", "1", 0o644),
			imagetest.File("a/b", "file", 0o644),
			imagetest.Dir("a/b", 0o755),
			imagetest.File("a/b/two", "2", 0o644),
		}, "", func(t *testing.T, dir string) {
			if _, err := os.Lstat(filepath.Join(dir, "a/b/one")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a/b/one survived its directory being replaced: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "a/b/two")); err != nil || string(b) != "2" {
				t.Errorf("a/b/two: %q %v", b, err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := extractEntries(t, dir, tc.entries...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if got, _ := os.ReadDir(outside); len(got) != 0 {
				t.Errorf("files written outside the layer: %v", got)
			}
			if tc.check != nil {
				tc.check(t, dir)
			}
		})
	}
}
