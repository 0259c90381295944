// Package beneath reads and changes a directory tree that a less-trusted
// party (a container, another user) can change while we work on it. Only the
// root is opened by path; everything below is reached relative to its
// parent's descriptor, and no symlink is ever followed, so a dir swapped for
// a symlink to a host path makes a call fail instead of reaching the host.
package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrReplaced is returned when an entry changed between its stat and its open.
var ErrReplaced = errors.New("replaced while being read")

// OpenRoot opens the dir path as the root of a walk. path is the caller's
// own (trusted) argument; only a symlink as its last component is refused.
func OpenRoot(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Resolve is how every path beneath a root is resolved: never out of it,
// never through a symlink or a magic link.
const Resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Openat opens path beneath the directory descriptor dirfd with openat2 and
// Resolve. EAGAIN (the kernel saw a rename it could not rule out) and EINTR
// are retried a few times.
func Openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: Resolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, path, &how)
		if (err == unix.EAGAIN || err == unix.EINTR) && i < 16 {
			continue
		}
		return fd, err
	}
}

// Open opens rel ("" is dir itself) beneath dir: no component may be a
// symlink, a magic link or lead out of dir (see Openat).
func Open(dir *os.File, rel string, flags int) (*os.File, error) {
	if rel == "" {
		rel = "."
	}
	fd, err := Openat(int(dir.Fd()), rel, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), rel)), nil
}

// OpenDir opens the dir name of dir for reading, and checks that it is still
// the entry st describes (see OpenSame).
func OpenDir(dir *os.File, name string, st *unix.Stat_t) (*os.File, error) {
	return OpenSame(dir, name, unix.O_RDONLY|unix.O_DIRECTORY, st)
}

// OpenSame opens the entry name of dir beneath it with flags, and checks that
// it is still the entry st describes (same device, inode and type): a swap
// between the stat and the open is ErrReplaced, never a read of something
// else.
func OpenSame(dir *os.File, name string, flags int, st *unix.Stat_t) (*os.File, error) {
	f, err := Open(dir, name, flags)
	if err != nil {
		return nil, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &now); err != nil {
		f.Close()
		return nil, err
	}
	if now.Ino != st.Ino || now.Dev != st.Dev || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		f.Close()
		return nil, ErrReplaced
	}
	return f, nil
}

// Lstat stats the entry name of dir without following it.
func Lstat(dir *os.File, name string, st *unix.Stat_t) error {
	return unix.Fstatat(int(dir.Fd()), name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// Names lists the open dir's entries in byte order. It reads the dir from
// its current offset, so call it once per open.
func Names(dir *os.File) ([]string, error) {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// ProcPath names the entry name of dir ("." for dir itself) for the l*
// calls that have no descriptor form for every file type (l*xattr): the
// /proc magic link pins dir, and the l* call does not follow name itself.
func ProcPath(dir *os.File, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + name
}

// Remove removes the entry name of dir, a file or an empty dir, like
// os.Remove. A symlink is removed, never followed.
func Remove(dir *os.File, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := unix.Unlinkat(int(dir.Fd()), name, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR)
	}
	return err
}

// RemoveAll removes the entry name of dir and, if it is a dir, everything
// in it, like os.RemoveAll, recursing through descriptors: a dir swapped
// for a symlink below is unlinked as a symlink, never entered. A name that
// is not there is no error.
func RemoveAll(dir *os.File, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := unix.Unlinkat(int(dir.Fd()), name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	sub, err := Open(dir, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := Names(sub)
	if err == nil {
		for _, n := range names {
			if err = RemoveAll(sub, n); err != nil {
				break
			}
		}
	}
	sub.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

// checkName refuses what is not one entry of a dir.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return unix.EINVAL
	}
	return nil
}
