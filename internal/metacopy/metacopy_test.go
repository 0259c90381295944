package metacopy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestValid(t *testing.T) {
	for rel, want := range map[string]bool{
		"a": true, "a/b": true, "...": true, "a/..b": true,
		"": false, ".": false, "..": false, "../a": false, "a/../b": false, "a/..": false,
		"/a": false, "a//b": false, "a/": false, "./a": false, "a\x00b": false,
	} {
		if Valid(rel) != want {
			t.Errorf("Valid(%q) = %v, want %v", rel, !want, want)
		}
	}
}

// Open finds the data in the topmost lower holding the path, beneath it,
// never through a symlink and never out of the layer.
func TestOpen(t *testing.T) {
	base := t.TempDir()
	top, bottom := filepath.Join(base, "top"), filepath.Join(base, "bottom")
	for _, d := range []string{top + "/d", bottom + "/d", bottom + "/e"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(base+"/outside", "outside")
	write(top+"/d/f", "top")
	write(bottom+"/d/f", "bottom")
	write(bottom+"/d/g", "bottom g")
	for _, l := range []string{"ln", "e/ln"} {
		if err := os.Symlink(base+"/outside", bottom+"/"+l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(base, top+"/up"); err != nil {
		t.Fatal(err)
	}
	var roots []int
	for _, d := range []string{top, bottom} {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		roots = append(roots, fd)
	}
	for rel, want := range map[string]string{
		"d/f": "top", "d/g": "bottom g",
		"ln": "EIO", "e/ln": "EIO", "up/outside": "EIO", "d": "EIO", "missing": "EIO",
		"../outside": "EPERM", "/etc/passwd": "EPERM",
	} {
		fd, _, err := Open(roots, rel, unix.O_RDONLY)
		got := ""
		var eno unix.Errno
		if errors.As(err, &eno) {
			got = unix.ErrnoName(eno)
		} else if err != nil {
			got = err.Error()
		} else {
			b := make([]byte, 64)
			n, _ := unix.Read(fd, b)
			unix.Close(fd)
			got = string(b[:n])
		}
		if got != want {
			t.Errorf("Open(%q) = %q, want %q", rel, got, want)
		}
	}
}

// TestRootlessTrust runs the trust rules as an unprivileged user (a copy
// of this test binary as nobody): the pointer name is user.*, and an upper
// is trusted only when it is the user's own.
func TestRootlessTrust(t *testing.T) {
	if os.Getenv("METACOPY_CHILD") != "" {
		mine, theirs := os.Getenv("METACOPY_MINE"), os.Getenv("METACOPY_THEIRS")
		if Xattr() != UserXattr || !Trusted(mine, true) || Trusted(mine, false) || Trusted(theirs, true) {
			fmt.Printf("Xattr %s, own upper %v (off: %v), root's upper %v\n", Xattr(), Trusted(mine, true), Trusted(mine, false), Trusted(theirs, true))
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the child as nobody")
	}
	if Xattr() != TrustedXattr || !Trusted(t.TempDir(), true) || Trusted(t.TempDir(), false) {
		t.Errorf("as root: Xattr %s, trusted %v", Xattr(), Trusted(t.TempDir(), true))
	}
	dir, err := os.MkdirTemp("", "metacopy-rootless")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin, mine, theirs := filepath.Join(dir, "test.bin"), filepath.Join(dir, "mine"), filepath.Join(dir, "theirs")
	for _, d := range []string{mine, theirs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mine, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestRootlessTrust$")
	cmd.Env = append(os.Environ(), "METACOPY_CHILD=1", "METACOPY_MINE="+mine, "METACOPY_THEIRS="+theirs)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("as nobody: %v %s", err, out)
	}
}

// TestReadFdData reads a pointer through an O_PATH descriptor (as the
// union's Stack does) and decides with Data whether it may be followed.
func TestReadFdData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 10); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	read := func() Pointer {
		t.Helper()
		ptr, err := ReadFd(fd, unix.S_IFREG, 10)
		if err != nil {
			t.Fatal(err)
		}
		return ptr
	}
	if rel, err := read().Data(true); rel != "" || err != nil {
		t.Errorf("no pointer: Data = %q, %v", rel, err)
	}
	if err := unix.Setxattr(p, Xattr(), Value("d/f"), 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("no xattrs here")
		}
		t.Fatal(err)
	}
	if rel, err := read().Data(true); rel != "d/f" || err != nil {
		t.Errorf("trusted pointer: Data = %q, %v", rel, err)
	}
	if rel, err := read().Data(false); rel != "" || !errors.Is(err, ErrUntrusted) {
		t.Errorf("pointer not to be followed: Data = %q, %v", rel, err)
	}
	if err := unix.Setxattr(p, Xattr(), Value("../etc/shadow"), 0); err != nil {
		t.Fatal(err)
	}
	if rel, err := read().Data(true); rel != "" || !errors.Is(err, ErrUntrusted) {
		t.Errorf("malformed pointer: Data = %q, %v", rel, err)
	}
}
