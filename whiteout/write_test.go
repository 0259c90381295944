package whiteout

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCreateFileAt: a marker is an empty mode-0 file that the readers see;
// an entry already there (a symlink included) stays as it is, and the
// symlink's target is never written.
func TestCreateFileAt(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, name := range []string{Name("gone"), OpaqueName} {
		if err := CreateFileAt(fd, name); err != nil {
			t.Fatalf("CreateFileAt %s: %v", name, err)
		}
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0 || fi.Size() != 0 {
			t.Errorf("%s: %v %v, want an empty mode-0 file", name, fi, err)
		}
		if err := CreateFileAt(fd, name); err != nil {
			t.Errorf("CreateFileAt %s again: %v", name, err)
		}
	}
	if opaque, err := IsOpaqueDir(dir); !opaque || err != nil {
		t.Errorf("IsOpaqueDir after the marker = %v, %v", opaque, err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.Symlink(victim, filepath.Join(dir, Name("link"))); err != nil {
		t.Fatal(err)
	}
	if err := CreateFileAt(fd, Name("link")); err != nil {
		t.Errorf("CreateFileAt over a symlink: %v", err)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the symlink was followed: %v", err)
	}
}

func TestMakeDeviceAt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := MakeDeviceAt(fd, "gone"); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "gone"), &st); err != nil || !IsOverlayWhiteout(&st) {
		t.Errorf("gone: %+v %v, want a 0/0 char device", st, err)
	}
	if err := MakeDeviceAt(fd, "gone"); !errors.Is(err, unix.EEXIST) {
		t.Errorf("MakeDeviceAt on a taken name: %v, want EEXIST", err)
	}
}
