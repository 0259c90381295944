package cow

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// applyMeta gives tmp the owner, mode, xattrs and times of src (described by
// st). The order matters:
//   - chown first: it clears setuid/setgid bits and security.capability;
//   - xattrs next, so security.capability survives, and before chmod since
//     setting a POSIX ACL rewrites the group mode bits;
//   - chmod then restores the exact mode, setuid/setgid included;
//   - times last, once the object is complete (Fsync after them only flushes).
func (e *Engine) applyMeta(src, tmp string, st *unix.Stat_t) error {
	return e.applyMetaAt(src, pathTarget(tmp), st)
}

// metaTarget is the object applyMetaAt changes: the entry at path (not
// following a symlink), or, with fd >= 0, the open file fd (an unnamed
// O_TMPFILE; path only names it in errors).
type metaTarget struct {
	path string
	fd   int
}

func pathTarget(p string) metaTarget { return metaTarget{path: p, fd: -1} }

func (t metaTarget) chown(uid, gid int) error {
	if t.fd >= 0 {
		return unix.Fchown(t.fd, uid, gid)
	}
	return unix.Lchown(t.path, uid, gid)
}

func (t metaTarget) chmod(mode uint32) error {
	if t.fd >= 0 {
		return unix.Fchmod(t.fd, mode)
	}
	return unix.Fchmodat(unix.AT_FDCWD, t.path, mode, 0)
}

func (t metaTarget) setxattr(name string, val []byte) error {
	if t.fd >= 0 {
		return unix.Fsetxattr(t.fd, name, val, 0)
	}
	return unix.Lsetxattr(t.path, name, val, 0)
}

func (t metaTarget) utimes(ts []unix.Timespec) error {
	if t.fd >= 0 {
		// futimens: utimensat on the descriptor itself (a NULL path).
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, t.path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (e *Engine) applyMetaAt(src string, tmp metaTarget, st *unix.Stat_t) error {
	if err := chown(tmp, st); err != nil {
		return err
	}
	if err := e.copyXattrs(src, tmp); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // symlink modes are fixed at 0777
		if err := tmp.chmod(st.Mode & 0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: tmp.path, Err: err}
		}
	}
	if err := tmp.utimes([]unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return &os.PathError{Op: "utimes", Path: tmp.path, Err: err}
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
	return &os.PathError{Op: "chown", Path: tmp.path, Err: err}
}

// copyXattrs copies the extended attributes of src to tmp, minus those
// Options.SkipXattr rejects and, when not root, the privileged namespaces the
// kernel does not let us read or write.
func (e *Engine) copyXattrs(src string, tmp metaTarget) error {
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
			return fmt.Errorf("xattr %s: %w", name, &os.PathError{Op: "copy", Path: src, Err: err})
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

// listXattrs returns the xattr names of p (not following a symlink).
func listXattrs(p string) ([]string, error) {
	buf, err := readSized(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
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

func getXattr(p, name string) ([]byte, error) {
	return readSized(func(b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
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
