package unionfs

import (
	"errors"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/beneath"
)

// Every access to an entry of a layer goes through descriptors, never
// through a path string: the daemon runs as root for other users, who can
// swap a directory for a symlink (a rename through the mount racing our
// operation, or a direct change of a layer dir). A path relative to the
// mount root is resolved by openat2 beneath the layer's root descriptor
// with no symlink and no magic link followed, so such a swap makes the
// operation fail (ELOOP, ENOENT) instead of reaching a file outside the
// layer. The operation then acts on the opened object (an O_PATH
// descriptor, with AT_EMPTY_PATH calls or its /proc/self/fd entry, which
// names the object we opened, not a path) or on one name in an opened
// parent directory (*at calls that never follow a final symlink).
//
// Directories are resolved through a cache of open descriptors
// (dircache.go), so an operation on a name in a recently used directory
// resolves no path at all.

// maxResolve bounds the path given to one openat2 (the kernel refuses
// PATH_MAX and more); longer paths are resolved in chunks, so entries at
// any depth are reachable.
const maxResolve = 4000

// openBeneath opens rel ("" is dirfd itself) beneath dirfd, following no
// symlink. Flags must carry O_NOFOLLOW for the last component to be opened
// when it is a symlink (with O_PATH), else a final symlink fails with ELOOP.
func openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	cur := dirfd
	for len(rel) >= maxResolve {
		i := strings.LastIndexByte(rel[:maxResolve], '/')
		if i <= 0 {
			closeOwned(cur, dirfd)
			return -1, syscall.ENAMETOOLONG
		}
		next, err := beneath.Openat(cur, rel[:i], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		closeOwned(cur, dirfd)
		if err != nil {
			return -1, err
		}
		cur, rel = next, rel[i+1:]
	}
	fd, err := beneath.Openat(cur, rel, flags, mode)
	closeOwned(cur, dirfd)
	return fd, err
}

func closeOwned(fd, caller int) {
	if fd != caller {
		unix.Close(fd)
	}
}

// openObj opens the entry rel of layer li as an O_PATH descriptor, a final
// symlink included (the link itself).
func (u *unionFS) openObj(li int, rel string) (int, error) {
	return openBeneath(u.layers[li].root, rel, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// openDir opens the directory rel of layer li as an O_PATH descriptor.
func (u *unionFS) openDir(li int, rel string) (int, error) {
	return openBeneath(u.layers[li].root, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// openParent opens the directory holding rel in layer li and returns it with
// rel's last name ("." for the layer root itself).
func (u *unionFS) openParent(li int, rel string) (int, string, error) {
	if rel == "" {
		fd, err := u.openDir(li, "")
		return fd, ".", err
	}
	dir, name := parentRel(rel), baseName(rel)
	fd, err := u.openDir(li, dir)
	return fd, name, err
}

// at runs fn on the name of rel in its opened parent directory in layer li
// (a descriptor of the directory cache: fn must not close it).
func (u *unionFS) at(li int, rel string, fn func(dir int, name string) error) error {
	dir, name := parentRel(rel), baseName(rel)
	if rel == "" {
		name = "."
	}
	fd, release, err := u.dirFd(li, dir)
	if err != nil {
		return err
	}
	defer release()
	return fn(fd, name)
}

// onObj runs fn on an O_PATH descriptor of the entry rel of layer li.
func (u *unionFS) onObj(li int, rel string, fn func(fd int) error) error {
	fd, err := u.openObj(li, rel)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// lstat stats the entry rel of layer li, not following a final symlink.
func (u *unionFS) lstat(li int, rel string, st *syscall.Stat_t) error {
	return u.at(li, rel, func(dir int, name string) error { return lstatAt(dir, name, st) })
}

// lstatAt stats name in the open directory dir, not following a symlink.
func lstatAt(dir int, name string, st *syscall.Stat_t) error {
	return fstatat(dir, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

func fstatat(dir int, name string, st *syscall.Stat_t, flags int) error {
	return unix.Fstatat(dir, name, (*unix.Stat_t)(unsafe.Pointer(st)), flags)
}

// baseName is rel's last name.
func baseName(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[i+1:]
	}
	return rel
}

// emptyPath is the "" path of AT_EMPTY_PATH calls.
var emptyPath = [1]byte{}

// fchmodFd changes the mode of the object fd (any descriptor, O_PATH
// included): fchmodat2 with AT_EMPTY_PATH (Linux 6.6).
func fchmodFd(fd int, mode uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(fd), uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(mode), unix.AT_EMPTY_PATH, 0, 0)
	if e == unix.ENOSYS {
		// Before 6.6: chmod through the descriptor's /proc entry, which
		// names the object we opened.
		return syscall.Chmod(fdPath(fd), mode)
	}
	if e != 0 {
		return e
	}
	return nil
}

// fchmodAt changes the mode of name in dir, not following a symlink:
// fchmodat2 (Linux 6.6).
func fchmodAt(dir int, name string, mode uint32) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(mode), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if e == unix.ENOSYS {
		// Before 6.6 only fchmodat, which follows a final symlink: the
		// callers chmod what they just created, never a symlink.
		return unix.Fchmodat(dir, name, mode, 0)
	}
	if e != 0 {
		return e
	}
	return nil
}

// fchownFd changes the owner of the object fd (O_PATH included).
func fchownFd(fd, uid, gid int) error {
	return unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH)
}

// futimesFd sets the times of the object fd (O_PATH included).
func futimesFd(fd int, ts []unix.Timespec) error {
	return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
}

// Extended attributes of an object opened as fd go through its /proc entry
// (f*xattr refuse O_PATH descriptors, which symlinks need): the entry
// leads to the object itself, a symlink included.

func fdGetxattr(fd int, attr string, dest []byte) (int, error) {
	return unix.Getxattr(fdPath(fd), attr, dest)
}

func fdSetxattr(fd int, attr string, data []byte, flags int) error {
	return unix.Setxattr(fdPath(fd), attr, data, flags)
}

func fdRemovexattr(fd int, attr string) error {
	return unix.Removexattr(fdPath(fd), attr)
}

// readlinkFd reads the symlink opened as fd.
func readlinkFd(fd int) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		sz, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return nil, err
		}
		if sz < len(buf) {
			return buf[:sz], nil
		}
		buf = make([]byte, len(buf)*2)
	}
}

// inDir runs fn on the directory rel of layer li, opened for reading (so
// fn can both list it and use it for *at calls).
func (u *unionFS) inDir(li int, rel string, fn func(dir int) error) error {
	fd, err := openBeneath(u.layers[li].root, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// readDirentsAt lists the directory name in the open directory dir.
func readDirentsAt(dir int, name string) ([]rawDirent, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readDirentsFd(fd)
}

// isMissing reports the errors that mean "no such entry in this layer":
// the name is absent, or a component on the way is not a directory (or is
// a symlink, which we never follow).
func isMissing(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// getxattrAt reads the xattr attr of name in the open directory dir, not
// following a symlink: getxattrat (Linux 6.13), else through an O_PATH
// descriptor of the entry.
func getxattrAt(dir int, name, attr string, dest []byte) (int, error) {
	pname, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	pattr, err := unix.BytePtrFromString(attr)
	if err != nil {
		return 0, err
	}
	args := xattrArgs{size: uint32(len(dest))}
	if len(dest) > 0 {
		args.value = uint64(uintptr(unsafe.Pointer(&dest[0])))
	}
	r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dir), uintptr(unsafe.Pointer(pname)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(unsafe.Pointer(pattr)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(dest)
	if e == unix.ENOSYS {
		fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		defer unix.Close(fd)
		return fdGetxattr(fd, attr, dest)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// xattrArgs is the kernel's struct xattr_args.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}
