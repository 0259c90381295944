package imagetest

import (
	"errors"
	"fmt"
	"os"
)

// BusyboxPaths are where Debian's busybox-static puts its binary.
var BusyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// ErrNoBusybox says the static busybox is not installed.
var ErrNoBusybox = errors.New("static busybox not found: apt-get install busybox-static")

// BusyboxApplets get a symlink in /bin.
var BusyboxApplets = []string{
	"sh", "ash", "ls", "cat", "echo", "mkdir", "rm", "rmdir", "touch", "mv", "cp", "ln", "true", "false",
	"id", "env", "sleep", "stat", "test", "printf", "hostname", "mount", "umount", "ps", "wc", "head",
	"tail", "grep", "sed", "uname", "chmod", "chown", "readlink", "dd", "sync", "df", "pwd", "whoami",
}

// FindBusybox returns the path of the static busybox, or ErrNoBusybox.
func FindBusybox() (string, error) {
	for _, p := range BusyboxPaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", ErrNoBusybox
}

// BusyboxSpec is the image description WriteBusyboxImage writes: one layer with
// /bin/busybox, applet symlinks, /etc/passwd, /etc/group, /tmp and /root.
func BusyboxSpec() (Image, error) {
	bin, err := FindBusybox()
	if err != nil {
		return Image{}, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return Image{}, fmt.Errorf("read %s: %w", bin, err)
	}
	entries := []Entry{
		Dir("bin", 0o755), BigFile("bin/busybox", data, 0o755),
		Dir("etc", 0o755),
		File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644),
		File("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
		Dir("root", 0o700), Dir("tmp", 0o1777), Dir("proc", 0o755), Dir("sys", 0o755), Dir("dev", 0o755),
	}
	for _, a := range BusyboxApplets {
		entries = append(entries, Symlink("bin/"+a, "busybox"))
	}
	return Image{
		Names:  []string{"busybox:latest"},
		Layers: []Layer{{Entries: entries}},
		Cmd:    []string{"/bin/sh"},
		Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, nil
}

// WriteBusyboxImage writes a docker-save tarball of busybox:latest to p.
func WriteBusyboxImage(p string) error {
	img, err := BusyboxSpec()
	if err != nil {
		return err
	}
	return WriteDockerArchive(p, img)
}
