package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/unionfsd/unionfsd/whiteout"
	"golang.org/x/sys/unix"
)

// Limits on entry names, refused with a clear error rather than whatever
// ENAMETOOLONG the kernel would give half-way through a layer.
const (
	maxNameLen = 255  // NAME_MAX
	maxPathLen = 4095 // PATH_MAX - 1
)

// ExtractOptions tunes Extract.
type ExtractOptions struct {
	// AsRoot makes Extract set owners, setuid/setgid bits, device nodes and
	// privileged xattrs. Without it those are skipped (with a warning for
	// devices and privileged xattrs), as a rootless user must.
	AsRoot bool
	// InUserNS: we are root of a user namespace (a rootless import): owners
	// outside its maps and privileged xattrs cannot be set and are skipped
	// with a warning.
	InUserNS bool
	// Warn receives one line per skipped item; nil discards.
	Warn func(msg string)
}

// ExtractStats reports what an extraction did.
type ExtractStats struct {
	Entries int
	Skipped int
}

// extractor applies one layer tar to an empty directory. All paths are
// resolved from the directory's fd with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) and every final component is created with *at calls
// that never follow symlinks, so no entry can land outside the directory or
// be written through a symlink an earlier entry planted.
type extractor struct {
	root   *os.File
	rootFd int
	opts   ExtractOptions
	stats  ExtractStats
	dirs   []dirMeta      // applied last: creating children changes a dir's mtime
	seen   map[string]int // dir path -> index in dirs; a repeated dir entry updates it
	buf    []byte         // file copy buffer, shared by all entries
	parent parentCache
	fresh  newFileState // what new files get without a chown or chmod
}

// parentCache holds the directory the previous entry went into. Layers list
// a directory's files together, so most entries reuse it instead of
// resolving their parent again (an openat2 and a close per file).
type parentCache struct {
	path string // comps joined by "/"; never "" (the root needs no cache)
	fd   int    // -1 when empty
}

type dirMeta struct {
	comps []string
	hdr   *tar.Header
}

// entryError is an error about one tar entry. Format may wrap the cause
// with %w, so that callers still see the errno (ENOSPC, EIO) behind it.
func entryError(name, format string, args ...any) error {
	return fmt.Errorf("entry %q: "+format, append([]any{name}, args...)...)
}

// Extract unpacks the tar stream r into dir, which must exist and be empty.
func Extract(r io.Reader, dir string, opts ExtractOptions) (ExtractStats, error) {
	root, err := os.Open(dir)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("extract into %s: %w", dir, err)
	}
	defer root.Close()
	x := &extractor{root: root, rootFd: int(root.Fd()), opts: opts, buf: make([]byte, copyBlock), parent: parentCache{fd: -1}}
	defer x.dropParent()
	x.fresh = newFileStateOf(x.rootFd)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.stats, readLayerError(err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.stats, err
		}
		x.stats.Entries++
	}
	return x.stats, x.finishDirs()
}

// readLayerError says why the next tar header could not be read. A
// corrupt archive is rephrased; any other cause (the blob's staging copy
// failing with ENOSPC or EIO, on the read-ahead) stays in the chain.
func readLayerError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
		return fmt.Errorf("read layer: %s", archiveErr(err))
	}
	return fmt.Errorf("read layer: %w", err)
}

func (x *extractor) warn(format string, args ...any) {
	x.stats.Skipped++
	if x.opts.Warn != nil {
		x.opts.Warn(fmt.Sprintf(format, args...))
	}
}

// splitEntryName validates a tar name and splits it into components.
// "./" and empty components are dropped; an empty result is the root itself.
func splitEntryName(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") {
		return nil, entryError(name, "absolute path")
	}
	if len(name) > maxPathLen {
		return nil, entryError(name[:64]+"...", "path longer than %d bytes", maxPathLen)
	}
	var comps []string
	parts := strings.Split(strings.TrimRight(name, "/"), "/")
	for i, c := range parts {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return nil, entryError(name, `path contains ".."`)
		case len(c) > maxNameLen && !(i == len(parts)-1 && isLongWhiteout(c)):
			return nil, entryError(name, "path component longer than %d bytes", maxNameLen)
		}
		comps = append(comps, c)
	}
	return comps, nil
}

// openDir opens the directory comps (relative to the root) without following
// any symlink. With create, missing directories are made (tar streams may
// omit parents). The caller closes the returned fd.
func (x *extractor) openDir(name string, comps []string, create bool) (int, error) {
	if len(comps) == 0 {
		return unix.Dup(x.rootFd)
	}
	p := strings.Join(comps, "/")
	fd, err := x.resolveDir(p)
	if err == nil {
		return fd, nil
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return -1, entryError(name, "parent %q is or goes through a symlink (refusing to write through it)", p)
	case errors.Is(err, unix.ENOTDIR):
		return -1, entryError(name, "parent %q is not a directory", p)
	case errors.Is(err, unix.EXDEV):
		return -1, entryError(name, "parent %q escapes the layer directory", p)
	case errors.Is(err, unix.ENOENT) && create:
		return x.mkdirParents(name, comps)
	}
	return -1, entryError(name, "open parent %q: %w", p, err)
}

// resolveDir opens the directory at p, relative to the root, refusing
// symlinks anywhere on the way and anything that would leave the root.
func (x *extractor) resolveDir(p string) (int, error) {
	return unix.Openat2(x.rootFd, p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

// mkdirParents creates comps one level at a time, each step again refusing symlinks.
func (x *extractor) mkdirParents(name string, comps []string) (int, error) {
	parent, err := x.openDir(name, comps[:len(comps)-1], true)
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	last := comps[len(comps)-1]
	if err := unix.Mkdirat(parent, last, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, entryError(name, "create parent %q: %w", strings.Join(comps, "/"), err)
	}
	// A parent the tar never lists gets a fixed epoch mtime, so the same
	// layer always extracts to the same tree; a later entry for it wins.
	x.rememberDir(comps, &tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(comps, "/"), Mode: 0o755, ModTime: time.Unix(0, 0)})
	return x.openDir(name, comps, false)
}

// parentDir returns the fd of the directory an entry goes into, creating
// missing parents. The fd belongs to the extractor (root or parent cache):
// callers do not close it.
func (x *extractor) parentDir(name string, comps []string) (int, error) {
	if len(comps) == 0 {
		return x.rootFd, nil
	}
	p := strings.Join(comps, "/")
	if x.parent.fd >= 0 && x.parent.path == p {
		return x.parent.fd, nil
	}
	fd, err := x.openDir(name, comps, true)
	if err != nil {
		return -1, err
	}
	x.dropParent()
	x.parent = parentCache{path: p, fd: fd}
	return fd, nil
}

func (x *extractor) dropParent() {
	if x.parent.fd >= 0 {
		unix.Close(x.parent.fd)
	}
	x.parent = parentCache{fd: -1}
}

// removed tells the parent cache that the entry at path p is gone. The
// cached fd would still name the old directory, now unlinked, if p was it or
// one of its ancestors; the next entry below p must resolve its path again
// (and meet whatever replaced p, a symlink say, and refuse it).
func (x *extractor) removed(p string) {
	if x.parent.fd >= 0 && (x.parent.path == p || strings.HasPrefix(x.parent.path, p+"/")) {
		x.dropParent()
	}
}

// entry extracts one tar entry.
func (x *extractor) entry(hdr *tar.Header, tr io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // git archive and others start with one; it names no file
	}
	comps, err := splitEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if len(comps) == 0 { // "./": the layer root itself
		if hdr.Typeflag != tar.TypeDir {
			return entryError(hdr.Name, "the layer root must be a directory")
		}
		x.rememberDir(nil, hdr)
		return nil
	}
	pfd, err := x.parentDir(hdr.Name, comps[:len(comps)-1])
	if err != nil {
		return err
	}
	base := comps[len(comps)-1]
	if target, ok := whiteout.Target(base); ok && !whiteout.NameFits(target) {
		return x.longWhiteout(hdr, comps, pfd, target)
	}
	create := func(op string, mk func() error) error { return x.create(hdr, comps, pfd, base, op, mk) }
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.clearWay(hdr, comps, pfd, base); err != nil {
			return err
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return entryError(hdr.Name, "mkdir: %w", err)
		}
		x.rememberDir(comps, hdr)
		return x.setOwnerXattrs(hdr, pfd, base)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return x.writeFile(hdr, pfd, base, tr, create)
	case tar.TypeSymlink:
		if err := checkSymlinkTarget(hdr.Name, hdr.Linkname); err != nil {
			return err
		}
		if err := create("symlink", func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) }); err != nil {
			return err
		}
	case tar.TypeLink:
		return x.hardlink(hdr, pfd, base, create)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		made, err := x.mknod(hdr, pfd, base, create)
		if err != nil || !made {
			return err
		}
	default:
		return entryError(hdr.Name, "unsupported tar entry type %q", string(hdr.Typeflag))
	}
	return x.setMeta(hdr, pfd, base)
}

// isLongWhiteout reports a whiteout name longer than NAME_MAX whose target
// is not: what a deleted name of 252-255 bytes looks like in a layer.
func isLongWhiteout(c string) bool {
	target, ok := whiteout.Target(c)
	return ok && !whiteout.NameFits(target) && len(target) <= maxNameLen
}

// longWhiteout extracts the whiteout of a name of more than 251 bytes,
// whose ".wh." name no filesystem can hold (unionfsd's commit writes such
// entries for deleted long names). It is kept in the overlay format that
// unionfsd reads as well: a 0/0 character device under the name itself.
func (x *extractor) longWhiteout(hdr *tar.Header, comps []string, pfd int, target string) error {
	tcomps := append(append([]string(nil), comps[:len(comps)-1]...), target)
	return x.create(hdr, tcomps, pfd, target, "whiteout (char 0/0)", func() error {
		return whiteout.MakeDeviceAt(pfd, target)
	})
}

// creator makes one non-directory entry; see (*extractor).create.
type creator func(op string, mk func() error) error

// create makes a non-directory entry with mk. Only when the name is taken
// does it clear the way (tar semantics: later entries win) and try once
// more: creating first spares a stat per entry for the usual fresh name.
func (x *extractor) create(hdr *tar.Header, comps []string, pfd int, base, op string, mk func() error) error {
	err := mk()
	if errors.Is(err, unix.EEXIST) {
		if err := x.clearWay(hdr, comps, pfd, base); err != nil {
			return err
		}
		err = mk()
	}
	if err != nil {
		return entryError(hdr.Name, "%s: %w", op, err)
	}
	return nil
}

// rememberDir queues a directory's mode and times for finishDirs; when a
// directory appears twice, the later header wins but keeps the first slot so
// the deepest-first order holds.
func (x *extractor) rememberDir(comps []string, hdr *tar.Header) {
	key := strings.Join(comps, "/")
	if x.seen == nil {
		x.seen = map[string]int{}
	}
	if i, ok := x.seen[key]; ok {
		x.dirs[i].hdr = hdr
		return
	}
	x.seen[key] = len(x.dirs)
	x.dirs = append(x.dirs, dirMeta{comps: comps, hdr: hdr})
}

// clearWay makes room for an entry whose name already exists: tar semantics
// are "later entries win", except that a directory over a directory merges.
func (x *extractor) clearWay(hdr *tar.Header, comps []string, pfd int, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // nothing there
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && hdr.Typeflag == tar.TypeDir {
		return nil
	}
	x.removed(strings.Join(comps, "/"))
	if isDir {
		// base was just checked to be a real directory below our verified
		// parent; RemoveAll never follows the symlinks inside it.
		if err := os.RemoveAll("/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base); err != nil {
			return entryError(hdr.Name, "replace existing directory: %w", err)
		}
		return nil
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return entryError(hdr.Name, "replace existing entry: %w", err)
	}
	return nil
}

// checkSymlinkTarget refuses only an empty target. Any other target is
// legal in an image, also a relative one that climbs above the layer root
// ("../../lib" in usr/lib64): it resolves inside the container, whose root
// it cannot leave, and the link is kept exactly as written. Nothing here or
// in the union ever follows a link: later entries through it are refused
// (openDir resolves parents with RESOLVE_NO_SYMLINKS).
func checkSymlinkTarget(name string, target string) error {
	if target == "" {
		return entryError(name, "empty symlink target")
	}
	return nil
}

// hardlink links to an earlier entry of the same layer.
func (x *extractor) hardlink(hdr *tar.Header, pfd int, base string, create creator) error {
	tcomps, err := splitEntryName(hdr.Linkname)
	if err != nil {
		return entryError(hdr.Name, "hardlink target %q escapes the layer or is too long", hdr.Linkname)
	}
	if len(tcomps) == 0 {
		return entryError(hdr.Name, "hardlink to the layer root")
	}
	tparent, err := x.openDir(hdr.Name, tcomps[:len(tcomps)-1], false)
	if err != nil {
		return err
	}
	defer unix.Close(tparent)
	// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
	return create(fmt.Sprintf("hardlink to %q", hdr.Linkname), func() error {
		return unix.Linkat(tparent, tcomps[len(tcomps)-1], pfd, base, 0)
	})
}

// mknod makes a device or fifo; devices are skipped (made=false) rootless.
func (x *extractor) mknod(hdr *tar.Header, pfd int, base string, create creator) (made bool, err error) {
	mode := uint32(hdr.Mode & 0o777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	if hdr.Typeflag != tar.TypeFifo && !x.opts.AsRoot {
		x.warn("skipping device node %s (%d:%d): creating devices needs root", hdr.Name, hdr.Devmajor, hdr.Devminor)
		return false, nil
	}
	var denied error
	err = create("mknod", func() error {
		err := unix.Mknodat(pfd, base, mode, dev)
		if errors.Is(err, unix.EPERM) && hdr.Typeflag != tar.TypeFifo {
			denied, err = err, nil
		}
		return err
	})
	if err != nil {
		return false, err
	}
	if denied != nil {
		x.warn("skipping device node %s (%d:%d): %v", hdr.Name, hdr.Devmajor, hdr.Devminor, denied)
		return false, nil
	}
	return true, nil
}

// writeFile writes a regular file and sets its metadata through its fd,
// leaving runs of zeros as holes so sparse files stay sparse.
func (x *extractor) writeFile(hdr *tar.Header, pfd int, base string, r io.Reader, create creator) error {
	fd := -1
	err := create("create", func() error {
		var err error
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, x.mode(hdr)&0o777)
		return err
	})
	if err != nil {
		return err
	}
	n, err := x.copyData(fd, r)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || (err == nil && n != hdr.Size):
		err = entryError(hdr.Name, "truncated layer (unexpected end of data)")
	case err != nil:
		err = entryError(hdr.Name, "%w", err)
	default:
		err = x.setFileMeta(hdr, fd, pfd, base)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = entryError(hdr.Name, "close: %w", cerr)
	}
	return err
}

// copyBlock is the copy buffer size, and the unit in which zeros become holes.
const copyBlock = 64 << 10

// copyData copies r to the new file fd, seeking over all-zero blocks. The
// file is truncated to its size only when it ends in such a hole: the
// truncate is a costly no-op otherwise.
func (x *extractor) copyData(fd int, r io.Reader) (int64, error) {
	var total int64
	hole := false
	for {
		n, err := io.ReadFull(r, x.buf)
		if n > 0 {
			if hole = isZero(x.buf[:n]); hole {
				if _, serr := unix.Seek(fd, int64(n), io.SeekCurrent); serr != nil {
					return total, fmt.Errorf("seek: %w", serr)
				}
			} else if werr := writeAll(fd, x.buf[:n]); werr != nil {
				return total, fmt.Errorf("write: %w", werr)
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	if hole {
		if err := unix.Ftruncate(fd, total); err != nil {
			return total, fmt.Errorf("truncate: %w", err)
		}
	}
	return total, nil
}

// writeAll writes b to fd, going on after short writes.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// chown gives an entry its owner when we are root (of a user namespace,
// for a rootless import: ids are then stored as the mapped ones).
func (x *extractor) chown(hdr *tar.Header, pfd int, base string) error {
	if !x.opts.AsRoot {
		return nil
	}
	return x.chownResult(hdr, unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW))
}

// chownResult turns a chown's outcome into a warning or an entry error.
func (x *extractor) chownResult(hdr *tar.Header, err error) error {
	if errors.Is(err, unix.EINVAL) && x.opts.InUserNS {
		x.warn("keeping %s owned by root: %d:%d is outside this user namespace's id maps", hdr.Name, hdr.Uid, hdr.Gid)
		return nil
	}
	if err != nil {
		return entryError(hdr.Name, "chown: %w", err)
	}
	return nil
}

// setOwnerXattrs sets owner then xattrs (chown drops security.capability, so
// xattrs go after it).
func (x *extractor) setOwnerXattrs(hdr *tar.Header, pfd int, base string) error {
	if err := x.chown(hdr, pfd, base); err != nil {
		return err
	}
	return x.setXattrs(hdr, pfd, base)
}

// setMeta applies owner, mode, xattrs and times to a non-directory.
// Order matters: chown clears setuid bits and capabilities, so it comes first.
func (x *extractor) setMeta(hdr *tar.Header, pfd int, base string) error {
	if err := x.chown(hdr, pfd, base); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// base is what we just created, not a symlink, so following is moot.
		if err := unix.Fchmodat(pfd, base, x.mode(hdr), 0); err != nil {
			return entryError(hdr.Name, "chmod: %w", err)
		}
	}
	if err := x.setXattrs(hdr, pfd, base); err != nil {
		return err
	}
	return setTimes(hdr, pfd, base)
}

// setFileMeta is setMeta for a regular file, through the fd it was written
// by: no path lookups, and no way for the name to mean anything else.
// The file was created with its permission bits; owner and mode are set
// only when the kernel did not already give it the right ones.
func (x *extractor) setFileMeta(hdr *tar.Header, fd, pfd int, base string) error {
	if x.opts.AsRoot && x.fresh.needsChown(hdr) {
		if err := x.chownResult(hdr, unix.Fchown(fd, hdr.Uid, hdr.Gid)); err != nil {
			return err
		}
	}
	if mode := x.mode(hdr); x.fresh.needsChmod(mode) {
		if err := unix.Fchmod(fd, mode); err != nil {
			return entryError(hdr.Name, "chmod: %w", err)
		}
	}
	err := x.applyXattrs(hdr, func(name string, val []byte) error { return unix.Fsetxattr(fd, name, val, 0) })
	if err != nil {
		return err
	}
	// utimensat on the name: base is the file fd was opened as, O_EXCL and
	// O_NOFOLLOW, and nothing has renamed it since.
	return setTimes(hdr, pfd, base)
}

// mode is the permission part of hdr.Mode; setuid/setgid only as root.
func (x *extractor) mode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode & 0o7777)
	if !x.opts.AsRoot {
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	return m
}

func setTimes(hdr *tar.Header, pfd int, base string) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.ModTime.IsZero() || hdr.ModTime.Before(time.Unix(0, 0)) {
		ts = []unix.Timespec{unix.NsecToTimespec(0), unix.NsecToTimespec(0)}
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return entryError(hdr.Name, "set times: %w", err)
	}
	return nil
}

// paxXattrPrefix marks xattrs in PAX records (GNU tar, docker, buildah).
const paxXattrPrefix = "SCHILY.xattr."

// setXattrs applies the entry's xattrs through /proc/self/fd/<parent>/<base>:
// the parent fd was resolved safely and lsetxattr does not follow base.
func (x *extractor) setXattrs(hdr *tar.Header, pfd int, base string) error {
	return x.applyXattrs(hdr, func(name string, val []byte) error {
		return unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(pfd)+"/"+base, name, val, 0)
	})
}

// applyXattrs sets the entry's xattrs with set, skipping (with a warning)
// those we may not set and union bookkeeping.
func (x *extractor) applyXattrs(hdr *tar.Header, set func(name string, val []byte) error) error {
	for key, val := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, paxXattrPrefix)
		if !ok {
			continue
		}
		if whiteout.IsInternalXattr(name) {
			// Union bookkeeping is never image content; honouring a stray
			// trusted.overlay.opaque would change what the layer hides.
			x.warn("dropping union-internal xattr %s on %s", name, hdr.Name)
			continue
		}
		err := set(name, []byte(val))
		switch {
		case err == nil:
			if name == aclDefaultXattr {
				x.fresh.defaultACL = true // files made below it now get the ACL's modes
			}
		case errors.Is(err, unix.EPERM) && (!x.opts.AsRoot || x.opts.InUserNS),
			errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP):
			x.warn("skipping xattr %s on %s: %v", name, hdr.Name, err)
		default:
			return entryError(hdr.Name, "set xattr %s: %w", name, err)
		}
	}
	return nil
}

// finishDirs sets directory modes and times, deepest first.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.finishDir(d); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) finishDir(d dirMeta) error {
	if len(d.comps) == 0 {
		// The root: chown/chmod through its own fd.
		if x.opts.AsRoot {
			if err := x.root.Chown(d.hdr.Uid, d.hdr.Gid); err != nil {
				return entryError(d.hdr.Name, "chown: %w", err)
			}
		}
		if err := x.root.Chmod(os.FileMode(x.mode(d.hdr) & 0o777)); err != nil {
			return entryError(d.hdr.Name, "chmod: %w", err)
		}
		return setTimes(d.hdr, x.rootFd, ".")
	}
	parent := x.rootFd
	if len(d.comps) > 1 {
		p := strings.Join(d.comps[:len(d.comps)-1], "/")
		fd, err := x.resolveDir(p)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			// An ancestor was replaced by a later entry (a file, a
			// symlink): this directory went with it.
			return nil
		}
		if err != nil {
			return entryError(d.hdr.Name, "open parent %q: %w", p, err)
		}
		defer unix.Close(fd)
		parent = fd
	}
	base := d.comps[len(d.comps)-1]
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil // replaced by a later entry
	}
	if err := unix.Fchmodat(parent, base, x.mode(d.hdr), 0); err != nil {
		return entryError(d.hdr.Name, "chmod: %w", err)
	}
	return setTimes(d.hdr, parent, base)
}
