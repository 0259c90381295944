package unionfs

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// deepName is one component of a tree deeper than PATH_MAX.
var deepName = strings.Repeat("d", 200)

const deepLevels = 25 // 25 * 201 bytes: past PATH_MAX (4096) in the layers too

// walkDeep makes (when mkdir) and opens the deep tree under the directory
// root, one component at a time, and returns the bottom directory.
func walkDeep(t *testing.T, root string, mkdir bool) int {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	for i := 0; i < deepLevels; i++ {
		if mkdir {
			if err := unix.Mkdirat(fd, deepName, 0o755); err != nil && err != unix.EEXIST {
				t.Fatalf("mkdir at level %d: %v", i, err)
			}
		}
		next, err := unix.Openat(fd, deepName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("open at level %d: %v", i, err)
		}
		fd = next
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestDeepTree works at the bottom of a tree whose paths, in the mount and
// in the layers, are longer than PATH_MAX: create, chmod, rename, unlink,
// and the copy-up of a lower file with all its parents.
func TestDeepTree(t *testing.T) {
	tu := newLayers(t, 1)
	low := walkDeep(t, tu.lowers[0], true)
	lf, err := unix.Openat(low, "lower", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	must(t, err)
	unix.Write(lf, []byte("deep"))
	unix.Close(lf)
	tu.mount(t, nil)

	dir := walkDeep(t, tu.mnt, false)
	var st unix.Stat_t
	must(t, unix.Fchmodat(dir, "lower", 0o600, 0))
	must(t, unix.Fstatat(dir, "lower", &st, 0))
	if st.Mode&0o777 != 0o600 {
		t.Errorf("copied-up lower file mode %o, want 600", st.Mode&0o777)
	}
	fd, err := unix.Openat(dir, "new", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	must(t, err)
	unix.Close(fd)
	must(t, unix.Fchmodat(dir, "new", 0o640, 0))
	must(t, unix.Renameat(dir, "new", dir, "renamed"))
	must(t, unix.Fstatat(dir, "renamed", &st, 0))
	if st.Mode&0o777 != 0o640 {
		t.Errorf("renamed file mode %o, want 640", st.Mode&0o777)
	}
	must(t, unix.Mkdirat(dir, "sub", 0o755))
	must(t, unix.Unlinkat(dir, "renamed", 0))
	must(t, unix.Unlinkat(dir, "lower", 0))

	up := walkDeep(t, tu.upper, false)
	for name, want := range map[string]bool{"sub": true, ".wh.lower": true, "renamed": false, "lower": false} {
		if got := unix.Fstatat(up, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil; got != want {
			t.Errorf("upper bottom holds %s: %v, want %v", name, got, want)
		}
	}
}

// TestRenameErrorMeansNothingHappened: once the rename has happened in the
// upper, a failing cleanup step must not turn it into an error (mv would
// then report a failure for a file that has moved). The stale whiteout of
// the destination here is a directory, put into the upper directly, so
// removing it after the rename fails.
func TestRenameErrorMeansNothingHappened(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/x", "lower x")
	writeFile(t, tu.upper+"/a", "a")
	mkdirAll(t, tu.upper+"/.wh.x/stray")
	tu.mount(t, nil)
	if _, err := os.Stat(tu.m("x")); !os.IsNotExist(err) {
		t.Fatalf("x shows through its whiteout: %v", err)
	}
	if err := os.Rename(tu.m("a"), tu.m("x")); err != nil {
		t.Errorf("rename: %v", err)
	}
	if b, err := os.ReadFile(tu.m("x")); err != nil || string(b) != "a" {
		t.Errorf("x after the rename: %q, %v", b, err)
	}
	if _, err := os.Stat(tu.m("a")); !os.IsNotExist(err) {
		t.Errorf("a after the rename: %v", err)
	}
}
