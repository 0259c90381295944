package cow

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// applyMeta gives the staged entry tmp the owner, mode, xattrs and times of
// the object open as src (described by st). The order matters:
//   - chown first: it clears setuid/setgid bits and security.capability;
//   - xattrs next, so security.capability survives, and before chmod since
//     setting a POSIX ACL rewrites the group mode bits;
//   - chmod then restores the exact mode, setuid/setgid included;
//   - times last, once the object is complete (Fsync after them only flushes).
func (e *Engine) applyMeta(src int, tmp At, st *unix.Stat_t) error {
	fd, err := openPath(tmp)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return e.applyMetaAt(src, metaTarget{name: tmp.Name, fd: fd}, st)
}

// metaTarget is the object applyMetaAt changes: the object open as fd (an
// O_PATH descriptor or an open file); name only names it in errors.
type metaTarget struct {
	name string
	fd   int
}

func (t metaTarget) chown(uid, gid int) error {
	return unix.Fchownat(t.fd, "", uid, gid, unix.AT_EMPTY_PATH)
}

// emptyPath is the "" path of AT_EMPTY_PATH calls.
var emptyPath = [1]byte{}

func (t metaTarget) chmod(mode uint32) error {
	// fchmodat2 (Linux 6.6) with AT_EMPTY_PATH also takes O_PATH descriptors.
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(t.fd), uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(mode), unix.AT_EMPTY_PATH, 0, 0)
	if e == unix.ENOSYS {
		return unix.Chmod(fdPath(t.fd), mode)
	}
	if e != 0 {
		return e
	}
	return nil
}

// setxattr goes through the descriptor's /proc entry, which leads to the
// object itself (fsetxattr refuses O_PATH descriptors).
func (t metaTarget) setxattr(name string, val []byte) error {
	return unix.Setxattr(fdPath(t.fd), name, val, 0)
}

func (t metaTarget) utimes(ts []unix.Timespec) error {
	return unix.UtimesNanoAt(t.fd, "", ts, unix.AT_EMPTY_PATH)
}

func (e *Engine) applyMetaAt(src int, tmp metaTarget, st *unix.Stat_t) error {
	if err := chown(tmp, st); err != nil {
		return err
	}
	if err := e.copyXattrs(src, tmp); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // symlink modes are fixed at 0777
		if err := tmp.chmod(st.Mode & 0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: tmp.name, Err: err}
		}
	}
	if err := tmp.utimes([]unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return &os.PathError{Op: "utimes", Path: tmp.name, Err: err}
	}
	return nil
}

// chown gives tmp the source's owner. Without the privilege (rootless) the
// copy keeps our own ids, as an unprivileged cp -p would.
func chown(tmp metaTarget, st *unix.Stat_t) error {
	err := tmp.chown(int(st.Uid), int(st.Gid))
	switch {
	case err == nil:
		return nil
	case err == unix.EPERM && os.Geteuid() != 0:
		return nil
	case err == unix.EINVAL:
		// The id has no mapping in our user namespace: nothing can own it here.
		return nil
	}
	return &os.PathError{Op: "chown", Path: tmp.name, Err: err}
}

// copyXattrs copies the extended attributes of the object open as src to
// tmp, minus those Options.SkipXattr rejects and, when not root, the
// privileged namespaces the kernel does not let us read or write.
func (e *Engine) copyXattrs(src int, tmp metaTarget) error {
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if e.opts.SkipXattr != nil && e.opts.SkipXattr(name) {
			continue
		}
		val, err := getXattr(src, name)
		if err == unix.ENODATA { // removed since the listing
			continue
		}
		if err == nil {
			err = tmp.setxattr(name, val)
		}
		if err != nil && !skippableXattrErr(name, err) {
			return fmt.Errorf("xattr %s: %w", name, &os.PathError{Op: "copy", Path: tmp.name, Err: err})
		}
	}
	return nil
}

// skippableXattrErr reports the failures an unprivileged copy-up must accept:
// trusted.* and security.* need privileges we do not have.
func skippableXattrErr(name string, err error) bool {
	if err != unix.ENOTSUP && err != unix.EPERM {
		return false
	}
	privileged := strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")
	return privileged && os.Geteuid() != 0
}

// listXattrs returns the xattr names of the object open as fd (through its
// /proc entry, which leads to the object itself, a symlink included).
// internal/xattr does the same for the rest of the tree; cow keeps its own
// (with readSized) because it imports nothing of this module: it is the
// copy-up engine every other package builds on.
func listXattrs(fd int) ([]string, error) {
	p := fdPath(fd)
	buf, err := readSized(func(b []byte) (int, error) { return unix.Listxattr(p, b) })
	if err == unix.ENOTSUP { // the source filesystem has no xattrs at all
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
	}
	var names []string
	for _, n := range bytes.Split(buf, []byte{0}) {
		if len(n) > 0 {
			names = append(names, string(n))
		}
	}
	return names, nil
}

func getXattr(fd int, name string) ([]byte, error) {
	p := fdPath(fd)
	return readSized(func(b []byte) (int, error) { return unix.Getxattr(p, name, b) })
}

// readSized runs a get/list xattr call that reports ERANGE for a too small
// buffer, asking for the size first and retrying if the value grew meanwhile.
func readSized(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
