package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRemoveAllKeepsSymlinkTargets removes a tree holding symlinks to a host
// dir and file: the links go, what they point at stays.
func TestRemoveAllKeepsSymlinkTargets(t *testing.T) {
	base := t.TempDir()
	host, top := filepath.Join(base, "host"), filepath.Join(base, "top")
	must(t, os.MkdirAll(filepath.Join(host, "keep"), 0o755))
	must(t, os.WriteFile(filepath.Join(host, "f"), []byte("host"), 0o644))
	must(t, os.MkdirAll(filepath.Join(top, "t", "a", "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(top, "t", "a", "b", "f"), nil, 0o644))
	must(t, os.Symlink(host, filepath.Join(top, "t", "a", "dirlink")))
	must(t, os.Symlink(filepath.Join(host, "f"), filepath.Join(top, "t", "filelink")))

	root, err := OpenRoot(top)
	must(t, err)
	defer root.Close()
	must(t, RemoveAll(root, "t"))
	if _, err := os.Lstat(filepath.Join(top, "t")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("t still there: %v", err)
	}
	for _, p := range []string{"keep", "f"} {
		if _, err := os.Lstat(filepath.Join(host, p)); err != nil {
			t.Errorf("host %s: %v", p, err)
		}
	}
	must(t, RemoveAll(root, "t")) // gone is no error
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if err := RemoveAll(root, bad); err != unix.EINVAL {
			t.Errorf("RemoveAll(%q) = %v, want EINVAL", bad, err)
		}
	}
}

// TestOpenRefusesSymlinks: neither a symlink component nor ".." leads out.
func TestOpenRefusesSymlinks(t *testing.T) {
	base := t.TempDir()
	top := filepath.Join(base, "top")
	must(t, os.MkdirAll(filepath.Join(top, "d"), 0o755))
	must(t, os.Symlink(base, filepath.Join(top, "s")))
	must(t, os.Symlink(base, filepath.Join(base, "rootlink")))
	root, err := OpenRoot(top)
	must(t, err)
	defer root.Close()
	for _, rel := range []string{"s", "s/top", "..", "d/../.."} {
		if f, err := Open(root, rel, unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", rel)
		}
	}
	if f, err := OpenRoot(filepath.Join(base, "rootlink")); err == nil {
		f.Close()
		t.Errorf("OpenRoot followed a symlink")
	}
	d, err := Open(root, "d", unix.O_RDONLY|unix.O_DIRECTORY)
	must(t, err)
	defer d.Close()
	var st unix.Stat_t
	must(t, Lstat(root, "d", &st))
	sub, err := OpenDir(root, "d", &st)
	must(t, err)
	sub.Close()
	must(t, Lstat(root, "s", &st))
	if _, err := OpenDir(root, "d", &st); err != ErrReplaced {
		t.Errorf("OpenDir with another entry's stat = %v, want ErrReplaced", err)
	}
}
