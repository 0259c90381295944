package xattr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		"":                nil,
		"user.a\x00":      {"user.a"},
		"user.a\x00b\x00": {"user.a", "b"},
		"a\x00\x00b":      {"a", "b"},
	} {
		if got := split([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("split(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestListGet sets xattrs on a file in a temp dir (user.* needs a
// filesystem that takes them) and reads them back by path and by an
// O_PATH descriptor, with a value and a list longer than the first buffer;
// a symlink to the file is not followed.
func TestListGet(t *testing.T) {
	dir := t.TempDir()
	f, link := filepath.Join(dir, "f"), filepath.Join(dir, "l")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("v", 1000)
	var want []string
	for i := 0; i < 20; i++ {
		name := "user.attribute-with-a-long-name-" + strings.Repeat("x", i)
		value := "y"
		if i == 3 {
			value = long
		}
		if err := unix.Setxattr(f, name, []byte(value), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				t.Skipf("%s: no user xattrs here", dir)
			}
			t.Fatal(err)
		}
		want = append(want, name)
	}
	got, err := List(f)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("List = %q, %v; want %q", got, err, want)
	}
	fd, err := unix.Open(f, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err = ListFd(fd)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ListFd = %q, %v; want %q", got, err, want)
	}
	if v, err := Get(f, want[3]); err != nil || string(v) != long {
		t.Errorf("Get = %d bytes, %v; want %d", len(v), err, len(long))
	}
	if names, err := List(link); err != nil || len(names) != 0 {
		t.Errorf("List of the symlink = %q, %v: followed it", names, err)
	}
	if _, err := Get(f, "user.none"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("Get of a missing xattr: %v, want ENODATA", err)
	}
}
