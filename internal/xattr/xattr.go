// Package xattr lists and reads extended attributes without following a
// final symlink, by path or by descriptor. It imports nothing of ours, so
// every package can share it (cow, which may import nothing of ours, keeps
// its own copy).
package xattr

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// List returns the xattr names of the file at path, a final symlink not
// followed. A filesystem without xattrs (ENOTSUP) has none.
func List(path string) ([]string, error) {
	return list(func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
}

// ListFd returns the xattr names of the object open as fd. It goes through
// the fd's /proc entry, which leads to the object itself (a symlink
// included): flistxattr refuses the O_PATH descriptors that symlinks need.
func ListFd(fd int) ([]string, error) {
	p := procPath(fd)
	return list(func(b []byte) (int, error) { return unix.Listxattr(p, b) })
}

// Get returns the value of the xattr name of the file at path, a final
// symlink not followed.
func Get(path, name string) ([]byte, error) {
	return readSized(func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// split turns a listxattr result (NUL-terminated names) into names.
func split(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, string(b[start:]))
	}
	return out
}

func list(call func([]byte) (int, error)) ([]string, error) {
	b, err := readSized(call)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return split(b), nil
}

// readSized runs a get or list xattr call, which fails with ERANGE for a
// too small buffer: a small buffer first (most values and lists fit),
// then the size the call reports, again if the value grew meanwhile.
func readSized(call func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := call(buf)
		if err == nil {
			return buf[:n], nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		if n, err = call(nil); err != nil {
			return nil, err
		}
		buf = make([]byte, n+1)
	}
}

func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
