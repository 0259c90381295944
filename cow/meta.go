package cow

import (
	"bytes"
	"fmt"
	"os"
	"strings"

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
	return e.applyMetaAt(src, metaTarget{path: tmp}, st)
}

// metaTarget names the object applyMetaAt changes: a path, or a
// /proc/self/fd link to an open unnamed file (follow), through which only
// calls that follow the link reach the file.
type metaTarget struct {
	path   string
	follow bool
}

func (e *Engine) applyMetaAt(src string, tmp metaTarget, st *unix.Stat_t) error {
	if err := chown(tmp, st); err != nil {
		return err
	}
	if err := e.copyXattrs(src, tmp); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // symlink modes are fixed at 0777
		if err := unix.Fchmodat(unix.AT_FDCWD, tmp.path, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: tmp.path, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if tmp.follow {
		flags = 0
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, tmp.path, ts, flags); err != nil {
		return &os.PathError{Op: "utimes", Path: tmp.path, Err: err}
	}
	return nil
}

// chown gives tmp the source's owner. Without the privilege (rootless) the
// copy keeps our own ids, as an unprivileged cp -p would.
func chown(tmp metaTarget, st *unix.Stat_t) error {
	var err error
	if tmp.follow {
		err = unix.Chown(tmp.path, int(st.Uid), int(st.Gid))
	} else {
		err = unix.Lchown(tmp.path, int(st.Uid), int(st.Gid))
	}
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
		if err == nil && tmp.follow {
			err = unix.Setxattr(tmp.path, name, val, 0)
		} else if err == nil {
			err = unix.Lsetxattr(tmp.path, name, val, 0)
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
