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
	root  *os.File
	opts  ExtractOptions
	stats ExtractStats
	dirs  []dirMeta      // applied last: creating children changes a dir's mtime
	seen  map[string]int // dir path -> index in dirs; a repeated dir entry updates it
}

type dirMeta struct {
	comps []string
	hdr   *tar.Header
}

// entryError is an error about one tar entry.
func entryError(name, format string, args ...any) error {
	return fmt.Errorf("entry %q: %s", name, fmt.Sprintf(format, args...))
}

// Extract unpacks the tar stream r into dir, which must exist and be empty.
func Extract(r io.Reader, dir string, opts ExtractOptions) (ExtractStats, error) {
	root, err := os.Open(dir)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("extract into %s: %w", dir, err)
	}
	defer root.Close()
	x := &extractor{root: root, opts: opts}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.stats, fmt.Errorf("read layer: %s", archiveErr(err))
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.stats, err
		}
		x.stats.Entries++
	}
	return x.stats, x.finishDirs()
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
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return nil, entryError(name, `path contains ".."`)
		case len(c) > maxNameLen:
			return nil, entryError(name, "path component longer than %d bytes", maxNameLen)
		}
		comps = append(comps, c)
	}
	return comps, nil
}

// openDir opens the directory comps (relative to the root) without following
// any symlink. With create, missing directories are made (tar streams may
// omit parents). The caller closes the result.
func (x *extractor) openDir(name string, comps []string, create bool) (*os.File, error) {
	if len(comps) == 0 {
		fd, err := unix.Dup(int(x.root.Fd()))
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), "."), nil
	}
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	p := strings.Join(comps, "/")
	fd, err := unix.Openat2(int(x.root.Fd()), p, how)
	if err == nil {
		return os.NewFile(uintptr(fd), p), nil
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, entryError(name, "parent %q is or goes through a symlink (refusing to write through it)", p)
	case errors.Is(err, unix.ENOTDIR):
		return nil, entryError(name, "parent %q is not a directory", p)
	case errors.Is(err, unix.EXDEV):
		return nil, entryError(name, "parent %q escapes the layer directory", p)
	case errors.Is(err, unix.ENOENT) && create:
		return x.mkdirParents(name, comps)
	}
	return nil, entryError(name, "open parent %q: %v", p, err)
}

// mkdirParents creates comps one level at a time, each step again refusing symlinks.
func (x *extractor) mkdirParents(name string, comps []string) (*os.File, error) {
	parent, err := x.openDir(name, comps[:len(comps)-1], true)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	last := comps[len(comps)-1]
	if err := unix.Mkdirat(int(parent.Fd()), last, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, entryError(name, "create parent %q: %v", strings.Join(comps, "/"), err)
	}
	// A parent the tar never lists gets a fixed epoch mtime, so the same
	// layer always extracts to the same tree; a later entry for it wins.
	x.rememberDir(comps, &tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(comps, "/"), Mode: 0o755, ModTime: time.Unix(0, 0)})
	return x.openDir(name, comps, false)
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
	parent, err := x.openDir(hdr.Name, comps[:len(comps)-1], true)
	if err != nil {
		return err
	}
	defer parent.Close()
	base := comps[len(comps)-1]
	pfd := int(parent.Fd())

	if err := x.clearWay(hdr, pfd, base); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return entryError(hdr.Name, "mkdir: %v", err)
		}
		x.rememberDir(comps, hdr)
		return x.setOwnerXattrs(hdr, pfd, base)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := x.writeFile(hdr, pfd, base, tr); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := checkSymlinkTarget(hdr.Name, comps, hdr.Linkname); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return entryError(hdr.Name, "symlink: %v", err)
		}
	case tar.TypeLink:
		return x.hardlink(hdr, pfd, base)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		made, err := x.mknod(hdr, pfd, base)
		if err != nil || !made {
			return err
		}
	default:
		return entryError(hdr.Name, "unsupported tar entry type %q", string(hdr.Typeflag))
	}
	return x.setMeta(hdr, pfd, base)
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
func (x *extractor) clearWay(hdr *tar.Header, pfd int, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // nothing there
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && hdr.Typeflag == tar.TypeDir {
		return nil
	}
	if isDir {
		// base was just checked to be a real directory below our verified
		// parent; RemoveAll never follows the symlinks inside it.
		if err := os.RemoveAll("/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base); err != nil {
			return entryError(hdr.Name, "replace existing directory: %v", err)
		}
		return nil
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return entryError(hdr.Name, "replace existing entry: %v", err)
	}
	return nil
}

// checkSymlinkTarget refuses relative targets that climb above the layer
// root. Absolute targets are fine: they are resolved against the container's
// root at run time, and nothing here or in the union ever follows a link.
func checkSymlinkTarget(name string, comps []string, target string) error {
	if target == "" {
		return entryError(name, "empty symlink target")
	}
	if strings.HasPrefix(target, "/") {
		return nil
	}
	depth := len(comps) - 1
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return entryError(name, "symlink target %q escapes the layer", target)
			}
		default:
			depth++
		}
	}
	return nil
}

// hardlink links to an earlier entry of the same layer.
func (x *extractor) hardlink(hdr *tar.Header, pfd int, base string) error {
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
	defer tparent.Close()
	// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
	if err := unix.Linkat(int(tparent.Fd()), tcomps[len(tcomps)-1], pfd, base, 0); err != nil {
		return entryError(hdr.Name, "hardlink to %q: %v", hdr.Linkname, err)
	}
	return nil
}

// mknod makes a device or fifo; devices are skipped (made=false) rootless.
func (x *extractor) mknod(hdr *tar.Header, pfd int, base string) (made bool, err error) {
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
	err = unix.Mknodat(pfd, base, mode, dev)
	if errors.Is(err, unix.EPERM) && hdr.Typeflag != tar.TypeFifo {
		x.warn("skipping device node %s (%d:%d): %v", hdr.Name, hdr.Devmajor, hdr.Devminor, err)
		return false, nil
	}
	if err != nil {
		return false, entryError(hdr.Name, "mknod: %v", err)
	}
	return true, nil
}

// writeFile writes a regular file, leaving runs of zeros as holes so sparse
// files stay sparse.
func (x *extractor) writeFile(hdr *tar.Header, pfd int, base string, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return entryError(hdr.Name, "create: %v", err)
	}
	f := os.NewFile(uintptr(fd), hdr.Name)
	n, err := copySparse(f, r)
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Truncate(n)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return entryError(hdr.Name, "truncated layer (unexpected end of data)")
		}
		return entryError(hdr.Name, "%v", err)
	}
	return nil
}

const sparseBlock = 64 << 10

// copySparse copies r to f, seeking over all-zero blocks.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, sparseBlock)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if isZero(buf[:n]) {
				if _, serr := f.Seek(int64(n), io.SeekCurrent); serr != nil {
					return total, serr
				}
			} else if _, werr := f.Write(buf[:n]); werr != nil {
				return total, fmt.Errorf("write: %w", werr)
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
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
	err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.EINVAL) && x.opts.InUserNS {
		x.warn("keeping %s owned by root: %d:%d is outside this user namespace's id maps", hdr.Name, hdr.Uid, hdr.Gid)
		return nil
	}
	if err != nil {
		return entryError(hdr.Name, "chown: %v", err)
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
			return entryError(hdr.Name, "chmod: %v", err)
		}
	}
	if err := x.setXattrs(hdr, pfd, base); err != nil {
		return err
	}
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
		return entryError(hdr.Name, "set times: %v", err)
	}
	return nil
}

// paxXattrPrefix marks xattrs in PAX records (GNU tar, docker, buildah).
const paxXattrPrefix = "SCHILY.xattr."

// setXattrs applies the entry's xattrs through /proc/self/fd/<parent>/<base>:
// the parent fd was resolved safely and lsetxattr does not follow base.
func (x *extractor) setXattrs(hdr *tar.Header, pfd int, base string) error {
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
		p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
		err := unix.Lsetxattr(p, name, []byte(val), 0)
		switch {
		case err == nil:
		case errors.Is(err, unix.EPERM) && (!x.opts.AsRoot || x.opts.InUserNS),
			errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP):
			x.warn("skipping xattr %s on %s: %v", name, hdr.Name, err)
		default:
			return entryError(hdr.Name, "set xattr %s: %v", name, err)
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
	var parent *os.File
	var base string
	var err error
	if len(d.comps) == 0 {
		// The root: chown/chmod through its own fd.
		if x.opts.AsRoot {
			if err := x.root.Chown(d.hdr.Uid, d.hdr.Gid); err != nil {
				return entryError(d.hdr.Name, "chown: %v", err)
			}
		}
		if err := x.root.Chmod(os.FileMode(x.mode(d.hdr) & 0o777)); err != nil {
			return entryError(d.hdr.Name, "chmod: %v", err)
		}
		parent, base = x.root, "."
	} else {
		parent, err = x.openDir(d.hdr.Name, d.comps[:len(d.comps)-1], false)
		if err != nil {
			return err
		}
		defer parent.Close()
		base = d.comps[len(d.comps)-1]
		var st unix.Stat_t
		if err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
			st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil // replaced by a later entry
		}
		if err := unix.Fchmodat(int(parent.Fd()), base, x.mode(d.hdr), 0); err != nil {
			return entryError(d.hdr.Name, "chmod: %v", err)
		}
	}
	return setTimes(d.hdr, int(parent.Fd()), base)
}
