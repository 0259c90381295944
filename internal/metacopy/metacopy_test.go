package metacopy

import (
	"errors"
	"os"
	"path/filepath"
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
