// Package metacopy holds the format and trust rules of the pointer a
// metadata-only copy-up leaves in an upper layer: the upper file carries the
// metadata, and an xattr names the lower file that still holds the data.
//
// Whoever can write an upper directory can write xattrs on its files, and a
// pointer followed blindly reads any file the daemon (often root) can open.
// So, as kernel overlay does with its metacopy and redirect xattrs:
//
//   - The pointer is kept where the writer of the upper cannot forge it:
//     trusted.unionfsd.metacopy when we run as real root (trusted.* needs
//     CAP_SYS_ADMIN in the initial user namespace to set), and
//     user.unionfsd.metacopy only when rootless. A rootless daemon reads
//     with the mounting user's own credentials, so a pointer can give it
//     nothing that user cannot open anyway; it is still only trusted when the
//     upper dir belongs to the daemon's user (Trusted).
//   - The value is a path relative to a layer root, never an absolute one,
//     and it is opened only beneath the lower layers of the union, with no
//     ".." out of them and no symlink followed (Open): whatever the value,
//     it reaches only files of those layers.
//   - A pointer is honoured only when the union has metacopy on. A pointer
//     that is not trusted, or malformed, is refused (EPERM), never followed
//     and never read as the upper file's own (empty) content: overlay too
//     refuses "to follow metacopy origin" when metacopy is off.
//
// Pointers of older versions (user.unionfsd.metacopy with an absolute
// path) are refused the same way.
package metacopy

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/beneath"
	"github.com/unionfsd/unionfsd/internal/userns"
)

// The two names of the pointer xattr.
const (
	TrustedXattr = "trusted.unionfsd.metacopy"
	UserXattr    = "user.unionfsd.metacopy"
)

// ErrUntrusted is the refusal of a pointer this process does not follow.
var ErrUntrusted = unix.EPERM

// ErrNoData means no lower layer holds the data a trusted pointer names
// (overlay answers EIO for a metacopy whose data is missing).
var ErrNoData = unix.EIO

// Xattr is the pointer name this process writes and trusts: TrustedXattr
// as real root, UserXattr otherwise.
func Xattr() string {
	if realRoot() {
		return TrustedXattr
	}
	return UserXattr
}

// realRoot reports whether we are root in the initial user namespace,
// where trusted.* xattrs can be set and read.
var realRoot = sync.OnceValue(func() bool { return os.Geteuid() == 0 && userns.Initial() })

// Trusted reports whether pointers in the upper dir at upper may be
// followed: metacopy must be on, and a rootless daemon additionally needs
// the upper to be its own (as root the xattr's namespace is the guard).
func Trusted(upper string, enabled bool) bool {
	if !enabled {
		return false
	}
	if realRoot() {
		return true
	}
	var st unix.Stat_t
	return unix.Stat(upper, &st) == nil && int(st.Uid) == os.Geteuid()
}

// Pointer is what Read found on an upper file.
type Pointer struct {
	// Present: the file carries a pointer xattr, in either namespace.
	Present bool
	// Rel is the layer-relative path of the data, when the pointer is in
	// Xattr's namespace and well formed; "" otherwise.
	Rel string
}

// Getter reads the xattr attr of one file into dest, as lgetxattr(2)
// does (an empty dest asks for the size), without following a symlink:
// how Read reaches the file, by descriptor or by path.
type Getter func(attr string, dest []byte) (int, error)

// Read reads the pointer of the upper file at path, whose mode and size
// the caller has (ReadWith for a file reached through a descriptor).
func Read(path string, mode uint32, size int64) (Pointer, error) {
	return ReadWith(func(attr string, dest []byte) (int, error) { return unix.Lgetxattr(path, attr, dest) }, mode, size)
}

// ReadFd reads the pointer of the upper file open as fd (O_PATH
// included: it goes through the fd's /proc entry, which leads to the file
// itself).
func ReadFd(fd int, mode uint32, size int64) (Pointer, error) {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	return ReadWith(func(attr string, dest []byte) (int, error) { return unix.Getxattr(p, attr, dest) }, mode, size)
}

// Data is the layer-relative path of the data p points to, "" when the
// file carries no pointer. A pointer present but refused (not in Xattr's
// namespace, malformed) or one the caller may not follow (trusted false:
// metacopy off, an upper not ours; see Trusted) is ErrUntrusted: never
// followed, and never read as the upper file's own, empty, content.
func (p Pointer) Data(trusted bool) (string, error) {
	switch {
	case !p.Present:
		return "", nil
	case p.Rel == "" || !trusted:
		return "", ErrUntrusted
	}
	return p.Rel, nil
}

// ReadWith reads the pointer of an upper file through get. Only regular
// files of non-zero size can be metadata-only copies; for others it reads
// nothing.
func ReadWith(get Getter, mode uint32, size int64) (Pointer, error) {
	var p Pointer
	if mode&unix.S_IFMT != unix.S_IFREG || size == 0 {
		return p, nil
	}
	own := Xattr()
	v, err := value(get, own)
	if err != nil {
		return p, err
	}
	if v != nil {
		p.Present = true
		if rel := string(v); Valid(rel) {
			p.Rel = rel
		}
		return p, nil
	}
	if own == TrustedXattr {
		// A user.* pointer under a root daemon: forged, or left by an
		// older version. Refused either way.
		v, err := value(get, UserXattr)
		p.Present = v != nil
		return p, err
	}
	return p, nil
}

// value returns the value of xattr name through get, nil when it is not set.
func value(get Getter, name string) ([]byte, error) {
	// Probe the size first: the common answer, ENODATA, then costs no
	// allocation on the lookup path.
	sz, err := get(name, nil)
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return nil, nil
	case err != nil:
		return nil, err
	}
	for {
		buf := make([]byte, sz+1)
		n, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			if sz, err = get(name, nil); err != nil {
				return nil, err
			}
			continue
		}
		if errors.Is(err, unix.ENODATA) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// Valid reports whether rel is a well-formed pointer value: a clean
// relative path that stays inside the layer (no "..", no NUL, not empty).
func Valid(rel string) bool {
	if rel == "" || rel == "." || len(rel) >= unix.PathMax || strings.IndexByte(rel, 0) >= 0 {
		return false
	}
	if filepath.IsAbs(rel) || filepath.Clean(rel) != rel {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, "../")
}

// Value is the xattr value recording rel, the data's path in its layer.
func Value(rel string) []byte { return []byte(rel) }

// Open opens the data rel names beneath the first of roots (O_PATH
// descriptors of the lower layer dirs, topmost first) that has an entry
// there, with flags (O_RDONLY, or O_PATH to stat it). The entry must be a
// regular file. It returns the descriptor and the index in roots.
func Open(roots []int, rel string, flags int) (int, int, error) {
	if !Valid(rel) {
		return -1, -1, ErrUntrusted
	}
	// Resolved inside a layer only: never out of it, never through a symlink.
	for i, root := range roots {
		fd, err := beneath.Openat(root, rel, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
			return -1, -1, ErrNoData // a symlink or a non-dir on the way: not a data file
		}
		if err != nil {
			return -1, -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, -1, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			return -1, -1, ErrNoData
		}
		return fd, i, nil
	}
	return -1, -1, ErrNoData
}

// IsPointerXattr reports whether name is one of the pointer's names.
func IsPointerXattr(name string) bool { return name == TrustedXattr || name == UserXattr }
