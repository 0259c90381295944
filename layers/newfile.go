package layers

import (
	"archive/tar"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/procfs"
)

// newFileState is what a file created during an extraction gets from the
// kernel on its own. When that is already what the tar entry asks for, the
// fchown and fchmod that would set it are skipped: with tar -xf's own
// openat/write/fchown/fchmod/utimensat/close per small file, two syscalls
// out of seven are a visible share of an import.
type newFileState struct {
	uid, gid int
	// sameGroup: no directory of the extraction is setgid, so a new file
	// gets our gid. Directories are made 0700/0755 and only get their
	// tar modes at the very end, so only the root can be setgid now.
	sameGroup bool
	// umask is the process umask, -1 when unknown.
	umask int
	// defaultACL: a default ACL may apply to new files, and with one the
	// kernel ignores the umask. Set from the root, and again by any entry
	// that carries a system.posix_acl_default xattr.
	defaultACL bool
}

const aclDefaultXattr = "system.posix_acl_default"

func newFileStateOf(rootFd int) newFileState {
	s := newFileState{uid: os.Geteuid(), gid: os.Getegid(), umask: processUmask(), defaultACL: true}
	var st unix.Stat_t
	if err := unix.Fstat(rootFd, &st); err == nil {
		s.sameGroup = st.Mode&unix.S_ISGID == 0
	}
	_, err := unix.Fgetxattr(rootFd, aclDefaultXattr, nil)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		s.defaultACL = false
	}
	return s
}

// processUmask reads the umask from /proc (reading it with umask(2) would
// mean changing it, racing with other goroutines); -1 if unavailable.
func processUmask() int {
	v, err := procfs.StatusField("self", "Umask")
	if err != nil || len(v) == 0 {
		return -1
	}
	m, err := strconv.ParseUint(v[0], 8, 32)
	if err != nil {
		return -1
	}
	return int(m)
}

// needsChown tells whether a new file must be chowned to hdr's owner.
func (s *newFileState) needsChown(hdr *tar.Header) bool {
	return hdr.Uid != s.uid || hdr.Gid != s.gid || !s.sameGroup
}

// needsChmod tells whether a file created with permission bits mode&0777
// must still be chmodded to mode.
func (s *newFileState) needsChmod(mode uint32) bool {
	return mode&0o7000 != 0 || s.umask < 0 || s.defaultACL || mode&uint32(s.umask) != 0
}
