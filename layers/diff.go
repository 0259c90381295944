package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/beneath"
	"github.com/unionfsd/unionfsd/internal/metacopy"
	"github.com/unionfsd/unionfsd/internal/xattr"
	"github.com/unionfsd/unionfsd/whiteout"
)

// WriteDiffTar writes the upper dir of a union as an OCI layer tar.
//
// An upper of unionfsd already holds OCI whiteouts, so most entries map one
// to one. Kernel-overlay uppers are converted: a 0/0 character device
// becomes ".wh.NAME", a directory with an overlay opaque xattr gains a
// ".wh..wh..opq" entry. Reserved ".wh..wh.*" names other than the opaque
// marker (our workdir ".wh..wh.unionfsd.work") and the union's internal
// xattrs are left out. Entries come sorted, so the same tree gives the same tar.
//
// The upper may belong to a running container, which can swap any dir in
// it for a symlink to a host path while we read. So below the root nothing
// is looked up by path: each entry is stat'ed, opened and listed relative
// to its parent's descriptor, never following a symlink (internal/beneath).
//
// A metadata-only copy in the upper is written as a full file with the data
// its pointer names, read from lowers (the union's lower dirs, topmost
// first) and only from beneath them (internal/metacopy): a pointer that is
// not trusted, or whose data is not in lowers, is an error, never followed
// elsewhere and never written as an empty file.
func WriteDiffTar(upper string, lowers []string, w io.Writer) error {
	root, err := os.OpenFile(upper, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	dw := &diffWriter{tw: tar.NewWriter(w), root: upper, links: map[[2]uint64]string{}}
	defer dw.closeLowers()
	if err := dw.openLowers(lowers); err != nil {
		return err
	}
	dw.trusted = metacopy.Trusted(upper, true)
	if err := dw.walk(root, "", ""); err != nil {
		return err
	}
	return dw.tw.Close()
}

type diffWriter struct {
	tw     *tar.Writer
	root   string
	links  map[[2]uint64]string // (dev, ino) of multiply-linked files -> first name
	lowers []int                // O_PATH descriptors of the lower dirs, for metacopy data
	// trusted: metacopy pointers in this upper may be followed.
	trusted bool
}

func (d *diffWriter) openLowers(lowers []string) error {
	for _, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("lower %s: %w", l, err)
		}
		d.lowers = append(d.lowers, fd)
	}
	return nil
}

func (d *diffWriter) closeLowers() {
	for _, fd := range d.lowers {
		unix.Close(fd)
	}
}

// walk writes the entries of the open directory dir (rel "" is the root),
// sorted. xattrPath names dir for the xattr calls ("" for the root).
func (d *diffWriter) walk(dir *os.File, rel, xattrPath string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(d.root, rel), err)
	}
	sort.Strings(names)
	if rel != "" {
		opaque, err := whiteout.HasOpaqueXattr(xattrPath)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(d.root, rel), err)
		}
		if opaque && !contains(names, whiteout.OpaqueName) {
			if err := d.marker(filepath.Join(rel, whiteout.OpaqueName), dir, "."); err != nil {
				return err
			}
		}
	}
	for _, name := range names {
		if whiteout.IsReserved(name) && !whiteout.IsOpaqueMarker(name) {
			continue // reserved: our workdir and other union bookkeeping
		}
		if err := d.entry(dir, name, filepath.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// marker writes an empty whiteout file, with the times of the thing it
// replaces (name in dir).
func (d *diffWriter) marker(rel string, dir *os.File, name string) error {
	var st unix.Stat_t
	mtime := time.Unix(0, 0)
	if unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		mtime = time.Unix(st.Mtim.Unix())
	}
	return d.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o600, ModTime: mtime, Format: tar.FormatPAX})
}

// entry writes the entry name of dir, whose path in the layer is rel.
func (d *diffWriter) entry(dir *os.File, name, rel string) error {
	full := filepath.Join(d.root, rel)
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	if whiteout.IsOverlayWhiteout(&st) {
		return d.marker(filepath.Join(filepath.Dir(rel), whiteout.Name(name)), dir, name)
	}
	at := beneath.ProcPath(dir, name)
	hdr, err := d.header(rel, at, dir, name, &st)
	if err != nil || hdr == nil {
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		return nil
	}
	var f *os.File
	switch {
	case hdr.Typeflag == tar.TypeReg && hdr.Size > 0:
		// O_NONBLOCK: a FIFO swapped in must not block the open before the check.
		f, err = beneath.OpenSame(dir, name, unix.O_RDONLY|unix.O_NONBLOCK, &st)
	case hdr.Typeflag == tar.TypeDir:
		f, err = beneath.OpenDir(dir, name, &st)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	if f != nil {
		defer f.Close()
	}
	var small []byte
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 && hdr.Size <= smallFileSize {
		if small, err = d.readSmall(f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		hdr.Size = int64(len(small))
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	switch {
	case small != nil:
		_, err = d.tw.Write(small)
		return err
	case hdr.Typeflag == tar.TypeReg && hdr.Size > 0:
		return d.copyContent(f, full, hdr.Size)
	case hdr.Typeflag == tar.TypeDir:
		return d.walk(f, rel, at)
	}
	return nil
}

// smallFileSize is the size up to which a file's data is read before its
// header is written, so the header carries the size actually read. A file
// that a live container (commit --pause=false) truncates and rewrites
// while we read then goes in as it was at one moment, not as an error;
// only a larger file that shrinks mid-copy still fails the commit.
const smallFileSize = 1 << 20

// readSmall reads at most size bytes of the data of the open upper file f.
func (d *diffWriter) readSmall(f *os.File, size int64) ([]byte, error) {
	src, err := d.openContent(f)
	if err != nil {
		return nil, err
	}
	if src != f {
		defer src.Close()
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(src, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return buf[:n], err
}

// header builds the tar header of one upper entry (name in dir, at for the
// xattr calls); nil for sockets.
func (d *diffWriter) header(rel, at string, dir *os.File, name string, st *unix.Stat_t) (*tar.Header, error) {
	hdr := &tar.Header{
		Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()), Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if whiteout.IsWhiteoutName(name) {
			// unionfsd links all whiteouts to one file: each is still a
			// whiteout of its own, never a hard link to another.
			hdr.Typeflag = tar.TypeReg
			return hdr, nil
		}
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := d.links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return hdr, nil
		}
		if st.Nlink > 1 {
			d.links[key] = rel
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFLNK:
		target, err := readlinkat(dir, name)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, nil // sockets have no tar form; docker drops them too
	}
	xattrs, err := readXattrs(at)
	if err != nil {
		return nil, err
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattrPrefix+k] = v
	}
	return hdr, nil
}

func readlinkat(dir *os.File, name string) (string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// copyContent copies size bytes of the data of the open upper file f (full
// names it in messages).
func (d *diffWriter) copyContent(f *os.File, full string, size int64) error {
	src, err := d.openContent(f)
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	if src != f {
		defer src.Close()
	}
	n, err := io.Copy(d.tw, io.LimitReader(src, size))
	if err == nil && n != size {
		err = fmt.Errorf("file shrank while it was read (%d of %d bytes): the upper changed meanwhile", n, size)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	return nil
}

// openContent returns the data of the open upper file f: f itself, or for
// a metadata-only copy the lower file its pointer names, opened beneath the
// lowers only.
func (d *diffWriter) openContent(f *os.File) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	ptr, err := metacopy.ReadFd(int(f.Fd()), st.Mode, st.Size)
	if err != nil {
		return nil, err
	}
	rel, err := ptr.Data(d.trusted)
	if err != nil {
		return nil, fmt.Errorf("metadata-only copy with a pointer that is not trusted here (wrong xattr namespace for this user, malformed, or an upper not ours): %w", err)
	}
	if rel == "" {
		return f, nil
	}
	if len(d.lowers) == 0 {
		return nil, fmt.Errorf("metadata-only copy of /%s: its data is in the lower layers, and none were given", rel)
	}
	fd, _, err := metacopy.Open(d.lowers, rel, unix.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("metadata-only copy: data /%s in the lower layers: %w", rel, err)
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// readXattrs lists the xattrs of path (not following it), minus the union's own.
func readXattrs(path string) (map[string]string, error) {
	names, err := xattr.List(path)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range names {
		if whiteout.IsInternalXattr(name) {
			continue
		}
		val, err := xattr.Get(path, name)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, fs.ErrPermission) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xattr %s: %w", name, err)
		}
		out[name] = string(val)
	}
	return out, nil
}
