// Package whiteout holds the naming and detection rules for deletions and
// opaque directories in layered filesystems, in both formats we meet:
//
//   - OCI image layers (and our own upper dirs): a file ".wh.NAME" hides NAME
//     in the layers below; a file ".wh..wh..opq" inside a directory hides
//     everything below that directory.
//   - kernel overlayfs: a character device 0/0 named NAME hides NAME; a
//     directory with the xattr trusted.overlay.opaque=y (user.overlay.opaque=y
//     for unprivileged mounts) is opaque.
//
// It imports nothing of this module: every other package asks it, so the rules
// live in exactly one place.
package whiteout

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// Prefix starts every OCI whiteout name.
	Prefix = ".wh."
	// MetaPrefix starts the names OCI reserves for markers (".wh..wh.").
	MetaPrefix = Prefix + Prefix
	// OpaqueName is the OCI opaque-directory marker.
	OpaqueName = MetaPrefix + ".opq"
)

// Overlay xattrs that mark a directory opaque in a kernel-overlay layer.
const (
	TrustedOpaqueXattr = "trusted.overlay.opaque"
	UserOpaqueXattr    = "user.overlay.opaque"
	// FuseOverlayfsOpaqueXattr is what rootless fuse-overlayfs sets (beside
	// an OCI marker) on the opaque dirs of the uppers it writes.
	FuseOverlayfsOpaqueXattr = "user.fuseoverlayfs.opaque"
)

// Name returns the OCI whiteout name that hides name.
func Name(name string) string { return Prefix + name }

// NameMax is the longest file name Linux filesystems take (NAME_MAX).
const NameMax = 255

// NameFits reports whether name has an OCI whiteout name a filesystem can
// hold. Names of more than NameMax-len(Prefix) (251) bytes have none: no
// ".wh.NAME" can exist for them, so a lookup of it must mean "no whiteout",
// and deleting such a name needs the overlay format (a 0/0 device under the
// name itself). Tar carries the longer name fine.
func NameFits(name string) bool { return len(Prefix)+len(name) <= NameMax }

// IsWhiteoutName reports whether name is a whiteout or marker name, that is,
// a name that never shows in a merged view and that users may not create.
func IsWhiteoutName(name string) bool { return strings.HasPrefix(name, Prefix) }

// IsReserved reports whether name starts with ".wh..wh.": a name OCI
// reserves for markers. Besides the opaque marker (IsOpaqueMarker) these are
// bookkeeping, never content: our workdir (".wh..wh.unionfsd.work"),
// aufs's ".wh..wh.plnk".
func IsReserved(name string) bool { return strings.HasPrefix(name, MetaPrefix) }

// IsOpaqueMarker reports whether name is the OCI opaque marker.
func IsOpaqueMarker(name string) bool { return name == OpaqueName }

// Target returns the name hidden by the whiteout file whName. ok is false for
// names that are not plain whiteouts (ordinary names and ".wh..wh." markers).
func Target(whName string) (target string, ok bool) {
	if !IsWhiteoutName(whName) || IsReserved(whName) {
		return "", false
	}
	target = whName[len(Prefix):]
	if target == "" || target == "." || target == ".." {
		return "", false
	}
	return target, true
}

// IsOverlayWhiteout reports whether st describes a kernel-overlay whiteout:
// a character device with device number 0/0.
func IsOverlayWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// IsOverlayWhiteoutMode is IsOverlayWhiteout for callers that have the mode
// and rdev but not a full stat (tar headers, statx).
func IsOverlayWhiteoutMode(mode uint32, rdev uint64) bool {
	return mode&unix.S_IFMT == unix.S_IFCHR && rdev == 0
}

// OpaqueXattrs lists the xattrs that mark a kernel-overlay directory opaque.
var OpaqueXattrs = []string{TrustedOpaqueXattr, UserOpaqueXattr, FuseOverlayfsOpaqueXattr}

// HasOpaqueXattr reports whether the directory at path carries an overlay
// opaque xattr set to "y". Missing xattrs, or filesystems without xattr
// support, mean "not opaque".
func HasOpaqueXattr(path string) (bool, error) {
	return hasOpaqueXattr(path, false)
}

// HasOpaqueXattrFd is HasOpaqueXattr for a directory open as fd (O_PATH
// included). It goes through the fd's /proc entry, which leads to the
// directory itself: the f*xattr calls refuse O_PATH descriptors.
func HasOpaqueXattrFd(fd int) (bool, error) {
	return hasOpaqueXattr("/proc/self/fd/"+strconv.Itoa(fd), true)
}

// hasOpaqueXattr is HasOpaqueXattr, following a final symlink when follow
// is set (for /proc/self/fd entries). Direct calls, not func values, so the
// buffers stay on the stack.
func hasOpaqueXattr(path string, follow bool) (bool, error) {
	// One listxattr answers for the common dir with no xattrs at all; this
	// runs for every merged directory lookup in every layer.
	var names [256]byte
	n, err := listxattr(path, follow, names[:])
	switch {
	case err == nil && n == 0, errors.Is(err, unix.ENOTSUP):
		return false, nil
	case err == nil:
		for _, x := range OpaqueXattrs {
			if hasName(names[:n], x) {
				if opaque, err := opaqueValue(path, follow, x); opaque || err != nil {
					return opaque, err
				}
			}
		}
		return false, nil
	case errors.Is(err, unix.ERANGE):
		// Too many names for the buffer: ask for each mark instead.
		for _, x := range OpaqueXattrs {
			if opaque, err := opaqueValue(path, follow, x); opaque || err != nil {
				return opaque, err
			}
		}
		return false, nil
	}
	return false, err
}

func listxattr(path string, follow bool, dest []byte) (int, error) {
	if follow {
		return unix.Listxattr(path, dest)
	}
	return unix.Llistxattr(path, dest)
}

func getxattr(path string, follow bool, attr string, dest []byte) (int, error) {
	if follow {
		return unix.Getxattr(path, attr, dest)
	}
	return unix.Lgetxattr(path, attr, dest)
}

// hasName reports whether a listxattr result holds name.
func hasName(list []byte, name string) bool {
	for len(list) > 0 {
		i := bytes.IndexByte(list, 0)
		if i < 0 {
			return string(list) == name
		}
		if string(list[:i]) == name {
			return true
		}
		list = list[i+1:]
	}
	return false
}

// opaqueValue reports whether the xattr x of path is "y".
func opaqueValue(path string, follow bool, x string) (bool, error) {
	var buf [8]byte
	n, err := getxattr(path, follow, x, buf[:])
	switch {
	case err == nil:
		return n == 1 && buf[0] == 'y', nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP),
		errors.Is(err, unix.ERANGE), errors.Is(err, unix.EPERM):
		// not set, not supported, a longer value ("x"-style flags never
		// exceed one byte) or not readable by us: not opaque.
		return false, nil
	}
	return false, err
}

// IsOpaqueDir reports whether the directory at path is opaque in either
// format: it holds ".wh..wh..opq" or carries an overlay opaque xattr.
func IsOpaqueDir(path string) (bool, error) {
	var st unix.Stat_t
	err := unix.Lstat(path+"/"+OpaqueName, &st)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
		return false, err
	}
	return HasOpaqueXattr(path)
}

// IsInternalXattr reports whether an xattr belongs to the union machinery
// (kernel overlay's or ours) and must be hidden from the merged view and
// never copied up or exported as image content.
func IsInternalXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") ||
		strings.HasPrefix(name, "user.overlay.") ||
		strings.HasPrefix(name, "user.fuseoverlayfs.") ||
		strings.HasPrefix(name, "user.unionfsd.") ||
		strings.HasPrefix(name, "trusted.unionfsd.")
}
