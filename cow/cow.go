// Package cow is the copy-up engine: it copies one filesystem object (file,
// symlink, directory without children, fifo, socket, device) from a read-only
// layer into the writable layer, atomically.
//
// Every object is first built under a unique temporary name in a work
// directory on the destination filesystem, completed (data, owner, mode,
// xattrs, times, optionally fsync), and only then renamed onto its final
// name with RENAME_NOREPLACE. A crash or an error (ENOSPC included) therefore
// never leaves a half-written object at the destination; at worst it leaves a
// temporary entry in the work directory, which New removes on the next start.
//
// Objects are named by directory descriptors and single names (At), never by
// paths: the caller opens the directories safely (in unionfs, beneath a layer
// root with no symlink followed), and no call here follows a symlink in a
// name, so a directory swapped for a symlink cannot lead a copy outside the
// layers.
package cow

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every staging entry in the work directory.
const TempPrefix = "cow-tmp-"

// Options tune an Engine.
type Options struct {
	// Fsync makes a staged regular file's data durable before the rename,
	// as kernel overlay does on copy-up (not after a clone: see writeFile).
	// Directories, links and the rename itself are not fsynced: on a
	// journaling filesystem metadata changes reach the disk in order, so a
	// crash shows either the complete new object or the old state; only
	// delayed file data needs the fsync.
	Fsync bool
	// SkipXattr names the extended attributes not to copy (nil: copy all).
	SkipXattr func(name string) bool
}

// At names a filesystem entry: Name, one path component, in the directory
// open as Dir. The caller keeps Dir open during the call.
type At struct {
	Dir  int
	Name string
}

// Engine copies objects up through one work directory. It is safe for
// concurrent use.
type Engine struct {
	workdir string
	work    int    // O_PATH descriptor of workdir
	dev     uint64 // st_dev of workdir: rename cannot cross filesystems
	opts    Options
	// named makes regular files go through a named staging file, as on a
	// filesystem without O_TMPFILE (for tests of that path).
	named  bool
	closed atomic.Bool
}

// tempSeq makes staging names unique within the process, across Engines
// that might share a work directory; the pid makes them unique across
// processes.
var tempSeq atomic.Uint64

// New opens workdir (creating it with mode 0700 if missing) and removes the
// staging entries a crash may have left in it.
func New(workdir string, opts Options) (*Engine, error) {
	if err := os.Mkdir(workdir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cow workdir %s: %w", workdir, err)
	}
	work, err := unix.Open(workdir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cow workdir %s: %w", workdir, err)
	}
	e := &Engine{workdir: workdir, work: work, opts: opts}
	if err := e.init(); err != nil {
		unix.Close(work)
		return nil, fmt.Errorf("cow workdir %s: %w", workdir, err)
	}
	return e, nil
}

func (e *Engine) init() error {
	var st unix.Stat_t
	if err := unix.Fstat(e.work, &st); err != nil {
		return err
	}
	e.dev = uint64(st.Dev)
	if err := e.removeStale(); err != nil {
		return err
	}
	return dropDefaultACL(e.work)
}

// removeStale deletes every staging entry left by an earlier run.
func (e *Engine) removeStale() error {
	names, err := readNames(e.work, ".")
	if err != nil {
		return err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, TempPrefix) {
			continue
		}
		if err := RemoveAllAt(e.work, name); err != nil {
			return err
		}
	}
	return nil
}

// readNames lists the directory name in the open directory dir.
func readNames(dir int, name string) ([]string, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return f.Readdirnames(-1)
}

// RemoveAllAt deletes name in the open directory dir and, for a directory,
// everything below it, never following a symlink. A missing name is fine.
func RemoveAllAt(dir int, name string) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return &os.PathError{Op: "unlink", Path: name, Err: err}
	}
	sub, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(sub)
	names, err := readNames(sub, ".")
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := RemoveAllAt(sub, n); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// dropDefaultACL removes a default ACL the work directory may have inherited
// from its parent (it often lives inside the upper dir): staged objects would
// inherit it and come out with an access ACL their source does not have.
func dropDefaultACL(work int) error {
	err := unix.Removexattr(fdPath(work), "system.posix_acl_default")
	if err == nil || err == unix.ENODATA || err == unix.ENOTSUP {
		return nil
	}
	return &os.PathError{Op: "removexattr", Path: "workdir", Err: err}
}

// Close marks the engine closed; later calls fail with os.ErrClosed.
func (e *Engine) Close() error {
	if !e.closed.Swap(true) {
		unix.Close(e.work)
	}
	return nil
}

// WorkDir returns the work directory's path, for messages.
func (e *Engine) WorkDir() string { return e.workdir }

// WorkFd returns the work directory's descriptor; it stays open until Close.
func (e *Engine) WorkFd() int { return e.work }

// TempName returns a fresh staging name in the work directory for callers
// that build something bigger than one object there; New removes it if a
// crash leaves it behind.
func (e *Engine) TempName() string { return e.tempName() }

// tempName returns a fresh staging name in the work directory.
func (e *Engine) tempName() string {
	n := tempSeq.Add(1)
	return TempPrefix + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(n, 10)
}

// fdPath names an open descriptor's object (not a path made of names).
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// CopyUp copies the single object src to dst, which must not exist and
// whose directory must be on the work directory's filesystem. Directories
// are copied without their children. For a regular file, size >= 0 copies
// only the first size bytes and sets the length to size (so a copy-up for
// truncate/O_TRUNC moves no data that would be thrown away); size < 0 copies
// everything. It returns the lstat of dst after the copy.
func (e *Engine) CopyUp(src, dst At, size int64) (unix.Stat_t, error) {
	st, err := e.copyUp(src, dst, size)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("copy-up %s: %w", src.Name, err)
	}
	return st, nil
}

func (e *Engine) copyUp(src, dst At, size int64) (unix.Stat_t, error) {
	var none unix.Stat_t
	if e.closed.Load() {
		return none, os.ErrClosed
	}
	if err := e.checkDst(dst); err != nil {
		return none, err
	}
	done, err := e.copyUpUnnamed(src, dst, size)
	if err != nil {
		return none, err
	}
	if !done {
		tmp := e.tempName()
		if err := e.build(src, tmp, size); err != nil {
			e.removeTemp(tmp)
			return none, err
		}
		if err := e.commit(tmp, dst, unix.RENAME_NOREPLACE); err != nil {
			e.removeTemp(tmp)
			return none, err
		}
	}
	return lstatAt(dst)
}

// lstatAt stats an entry, not following a symlink.
func lstatAt(a At) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(a.Dir, a.Name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: a.Name, Err: err}
	}
	return st, nil
}

// openPath opens an entry as an O_PATH descriptor, a symlink included.
func openPath(a At) (int, error) {
	fd, err := unix.Openat(a.Dir, a.Name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: a.Name, Err: err}
	}
	return fd, nil
}

// checkDst fails early, before any data is copied, when dst exists or its
// directory is on another filesystem. The rename re-checks all this
// atomically; this only avoids copying a large file for nothing.
func (e *Engine) checkDst(dst At) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dst.Dir, dst.Name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return &os.PathError{Op: "create", Path: dst.Name, Err: unix.EEXIST}
	} else if err != unix.ENOENT {
		return &os.PathError{Op: "lstat", Path: dst.Name, Err: err}
	}
	if err := unix.Fstat(dst.Dir, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dst.Name, Err: err}
	}
	if uint64(st.Dev) != e.dev {
		return fmt.Errorf("the directory of %s is not on the filesystem of workdir %s: %w", dst.Name, e.workdir, unix.EXDEV)
	}
	return nil
}

// build creates the staging entry tmp as a complete copy of src: content
// and metadata.
func (e *Engine) build(src At, tmp string, size int64) error {
	st, err := lstatAt(src)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return e.buildFile(src, tmp, size)
	case unix.S_IFDIR:
		if err := unix.Mkdirat(e.work, tmp, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: tmp, Err: err}
		}
	case unix.S_IFLNK:
		target, err := readlinkAt(src)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, e.work, tmp); err != nil {
			return &os.PathError{Op: "symlink", Path: tmp, Err: err}
		}
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
		// Created with no permission bits; applyMeta sets the real ones.
		if err := unix.Mknodat(e.work, tmp, st.Mode&unix.S_IFMT, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: tmp, Err: err}
		}
	default:
		return fmt.Errorf("%s: unsupported file type %#o", src.Name, st.Mode&unix.S_IFMT)
	}
	srcFd, err := openPath(src)
	if err != nil {
		return err
	}
	defer unix.Close(srcFd)
	return e.applyMeta(srcFd, At{e.work, tmp}, &st)
}

// readlinkAt reads the symlink a.
func readlinkAt(a At) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(a.Dir, a.Name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: a.Name, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// copyUpUnnamed copies a regular file the way overlay does: into an unnamed
// file (O_TMPFILE) in the work directory, completed and fsynced, then linked
// at dst, which fails if dst exists. A crash leaves nothing behind, and the
// fsync does not have to make a new directory entry durable (on ext4 without
// a journal that syncs the work directory too). It reports false, having
// done nothing, when src is not a regular file or the filesystem has no
// O_TMPFILE, or the link is refused (see below): the caller then stages
// under a name. The metadata is set through the descriptor; only the link
// names the file by its /proc/self/fd entry.
func (e *Engine) copyUpUnnamed(src, dst At, size int64) (bool, error) {
	st, err := lstatAt(src)
	if err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || e.named {
		return false, nil
	}
	fd, err := unix.Openat(e.work, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false, nil // EOPNOTSUPP, EISDIR on old kernels, ...
	}
	out := os.NewFile(uintptr(fd), e.workdir+" (O_TMPFILE)")
	defer out.Close()
	if err := e.fillFile(src, out, metaTarget{name: out.Name(), fd: fd}, size); err != nil {
		return true, err
	}
	err = unix.Linkat(unix.AT_FDCWD, fdPath(fd), dst.Dir, dst.Name, unix.AT_SYMLINK_FOLLOW)
	if err == unix.EPERM || err == unix.ENOENT && !procMounted() {
		// EPERM: protected_hardlinks refuses to link a file we may not
		// write (an unprivileged copy of a read-only file of another
		// owner). ENOENT: no /proc to name the unnamed file with.
		return false, nil
	}
	if err != nil {
		return true, &os.LinkError{Op: "link", Old: out.Name(), New: dst.Name, Err: err}
	}
	return true, nil
}

// procMounted reports whether /proc/self/fd can name open files.
func procMounted() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/fd", &st) == nil
}

// buildFile copies a regular file to the new staging file tmp.
func (e *Engine) buildFile(src At, tmp string, size int64) error {
	out, err := e.createTemp(tmp)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := e.fillFile(src, out, metaTarget{name: tmp, fd: int(out.Fd())}, size); err != nil {
		return err
	}
	return out.Close()
}

// fillFile copies the regular file src into the empty file out (tmp for
// metadata calls): data (at most size bytes if size >= 0), then metadata,
// then fsync, all through one open descriptor of the source so that a
// concurrent rename of src cannot mix two files.
func (e *Engine) fillFile(src At, out *os.File, tmp metaTarget, size int64) error {
	in, err := openSource(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: src.Name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &os.PathError{Op: "open", Path: src.Name, Err: unix.EINVAL}
	}
	return e.writeFile(in, &st, out, tmp, int(in.Fd()), &st, size)
}

// writeFile fills out, the new file tmp, with the data of in (whose fstat
// is inSt), cut or extended to meta's size or to size when size >= 0, gives
// it the owner, mode, xattrs and times of the object open as metaSrc
// (described by meta) and fsyncs it. A copy-up takes data and metadata from
// one file; completing a metadata-only copy takes the data from the lower
// file and the metadata from the upper entry.
func (e *Engine) writeFile(in *os.File, inSt *unix.Stat_t, out *os.File, tmp metaTarget, metaSrc int, meta *unix.Stat_t, size int64) error {
	target := meta.Size
	if size >= 0 {
		target = size
	}
	cloned, err := copyData(in, out, inSt, e.dev, target)
	if err != nil {
		return err
	}
	if err := e.applyMetaAt(metaSrc, tmp, meta); err != nil {
		return err
	}
	// A clone has no data of its own to write back: it shares the source's
	// extents, and the filesystems that clone (xfs, btrfs) log the clone
	// before the link or rename that publishes it. Overlay skips this fsync
	// after a clone too.
	if e.opts.Fsync && !cloned {
		if err := out.Sync(); err != nil {
			return &os.PathError{Op: "fsync", Path: tmp.name, Err: err}
		}
	}
	return nil
}

// createTemp creates the staging file tmp, which must not exist. (Raw open:
// os.OpenFile spends four fcntl calls per file on poller setup that a
// regular file never uses.)
func (e *Engine) createTemp(tmp string) (*os.File, error) {
	fd, err := unix.Openat(e.work, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: tmp, Err: err}
	}
	return os.NewFile(uintptr(fd), tmp), nil
}

// openSource opens src for reading without following a symlink and, when
// permitted, without updating its atime: copy-up must not touch lower layers.
func openSource(src At) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(src.Dir, src.Name, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		// O_NOATIME needs ownership or CAP_FOWNER.
		fd, err = unix.Openat(src.Dir, src.Name, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: src.Name, Err: err}
	}
	return os.NewFile(uintptr(fd), src.Name), nil
}

// commit renames the staging entry tmp onto dst with the given renameat2
// flags. The directory is not fsynced (see Options.Fsync): the fsync of
// each copied file cost as much again as the file's own, and kernel overlay
// does not do it either.
func (e *Engine) commit(tmp string, dst At, flags uint) error {
	if err := unix.Renameat2(e.work, tmp, dst.Dir, dst.Name, flags); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: dst.Name, Err: err}
	}
	return nil
}

// removeTemp deletes a staging entry after a failure.
func (e *Engine) removeTemp(tmp string) {
	_ = RemoveAllAt(e.work, tmp)
}

// fsyncAt fsyncs a file or directory.
func fsyncAt(a At) error {
	fd, err := unix.Openat(a.Dir, a.Name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: a.Name, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &os.PathError{Op: "fsync", Path: a.Name, Err: err}
	}
	return nil
}

// Stage builds an object in the work directory with build(tmp), which must
// create tmp, then renames it onto dst. Without replace, dst must not exist
// (EEXIST). With replace, an existing non-directory or empty directory at dst
// is replaced atomically; a non-empty directory fails with ENOTEMPTY. On any
// error nothing is left in the work directory and dst is unchanged.
func (e *Engine) Stage(dst At, replace bool, build func(tmp At) error) error {
	if err := e.stage(dst, replace, build); err != nil {
		return fmt.Errorf("stage %s: %w", dst.Name, err)
	}
	return nil
}

func (e *Engine) stage(dst At, replace bool, build func(tmp At) error) error {
	if e.closed.Load() {
		return os.ErrClosed
	}
	tmp := e.tempName()
	err := build(At{e.work, tmp})
	if err == nil && e.opts.Fsync {
		err = e.fsyncTree(tmp)
	}
	if err == nil {
		if replace {
			err = e.replace(tmp, dst)
		} else {
			err = e.commit(tmp, dst, unix.RENAME_NOREPLACE)
		}
	}
	if err != nil {
		e.removeTemp(tmp)
	}
	return err
}

// replace renames tmp over dst. A plain rename handles a same-kind dst (file
// over non-directory, directory over empty directory); when the kinds differ
// rename refuses, so the two are exchanged atomically and the old object,
// now at tmp, is removed. A non-empty directory is swapped back untouched.
func (e *Engine) replace(tmp string, dst At) error {
	err := e.commit(tmp, dst, 0)
	if !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.EISDIR) {
		return err
	}
	if err := e.commit(tmp, dst, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	if err := removeOld(At{e.work, tmp}); err != nil {
		// Put the old object back so dst is unchanged.
		if xerr := e.commit(tmp, dst, unix.RENAME_EXCHANGE); xerr != nil {
			return fmt.Errorf("%w (restoring %s: %v)", err, dst.Name, xerr)
		}
		return err
	}
	return nil
}

// removeOld removes a replaced object: a non-directory or an empty directory.
func removeOld(a At) error {
	err := unix.Unlinkat(a.Dir, a.Name, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(a.Dir, a.Name, unix.AT_REMOVEDIR)
	}
	if err == unix.EEXIST {
		err = unix.ENOTEMPTY // some filesystems say EEXIST for a non-empty rmdir
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: a.Name, Err: err}
	}
	return nil
}

// fsyncTree fsyncs the staged regular file tmp or, for a directory, its
// direct regular-file children (Stage builds shallow objects); see
// Options.Fsync.
func (e *Engine) fsyncTree(tmp string) error {
	st, err := lstatAt(At{e.work, tmp})
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return fsyncAt(At{e.work, tmp})
	case unix.S_IFDIR:
	default:
		return nil
	}
	dir, err := unix.Openat(e.work, tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: tmp, Err: err}
	}
	f := os.NewFile(uintptr(dir), tmp)
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if ent.Type().IsRegular() {
			if err := fsyncAt(At{dir, ent.Name()}); err != nil {
				return err
			}
		}
	}
	return nil
}
