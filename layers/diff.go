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
	"strings"
	"time"

	"github.com/unionfsd/unionfsd/whiteout"
	"golang.org/x/sys/unix"
)

// WriteDiffTar writes the upper dir of a union as an OCI layer tar.
//
// An upper of unionfsd already holds OCI whiteouts, so most entries map one
// to one. Kernel-overlay uppers are converted: a 0/0 character device
// becomes ".wh.NAME", a directory with an overlay opaque xattr gains a
// ".wh..wh..opq" entry. Reserved ".wh..wh.*" names other than the opaque
// marker (our workdir ".wh..wh.unionfsd.work") and the union's internal
// xattrs are left out. Entries come sorted, so the same tree gives the same tar.
func WriteDiffTar(upper string, w io.Writer) error {
	dw := &diffWriter{tw: tar.NewWriter(w), root: upper, links: map[[2]uint64]string{}}
	if err := dw.walk("", true); err != nil {
		return err
	}
	return dw.tw.Close()
}

type diffWriter struct {
	tw    *tar.Writer
	root  string
	links map[[2]uint64]string // (dev, ino) of multiply-linked files -> first name
}

// walk writes the entries of the directory rel ("" is the root), sorted.
func (d *diffWriter) walk(rel string, isRoot bool) error {
	dir := filepath.Join(d.root, rel)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("commit: read %s: %w", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if !isRoot {
		opaque, err := whiteout.HasOpaqueXattr(dir)
		if err != nil {
			return fmt.Errorf("commit: %s: %w", dir, err)
		}
		if opaque && !contains(names, whiteout.OpaqueName) {
			if err := d.marker(filepath.Join(rel, whiteout.OpaqueName), dir); err != nil {
				return err
			}
		}
	}
	for _, name := range names {
		if strings.HasPrefix(name, whiteout.MetaPrefix) && name != whiteout.OpaqueName {
			continue // reserved: our workdir and other union bookkeeping
		}
		if err := d.entry(filepath.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// marker writes an empty whiteout file, with the times of the thing it replaces.
func (d *diffWriter) marker(rel, timesFrom string) error {
	var st unix.Stat_t
	mtime := time.Unix(0, 0)
	if unix.Lstat(timesFrom, &st) == nil {
		mtime = time.Unix(st.Mtim.Unix())
	}
	return d.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o600, ModTime: mtime, Format: tar.FormatPAX})
}

func (d *diffWriter) entry(rel string) error {
	full := filepath.Join(d.root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return fmt.Errorf("commit: %s: %w", full, err)
	}
	if whiteout.IsOverlayWhiteout(&st) {
		return d.marker(filepath.Join(filepath.Dir(rel), whiteout.Name(filepath.Base(rel))), full)
	}
	hdr, err := d.header(rel, full, &st)
	if err != nil || hdr == nil {
		return err
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("commit: %s: %w", full, err)
	}
	switch {
	case hdr.Typeflag == tar.TypeReg && hdr.Size > 0:
		if err := d.copyContent(full, hdr.Size); err != nil {
			return err
		}
	case hdr.Typeflag == tar.TypeDir:
		return d.walk(rel, false)
	}
	return nil
}

// header builds the tar header of one upper entry; nil for sockets.
func (d *diffWriter) header(rel, full string, st *unix.Stat_t) (*tar.Header, error) {
	hdr := &tar.Header{
		Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()), Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if whiteout.IsWhiteoutName(filepath.Base(rel)) {
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
		target, err := os.Readlink(full)
		if err != nil {
			return nil, fmt.Errorf("commit: %s: %w", full, err)
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
	xattrs, err := readXattrs(full)
	if err != nil {
		return nil, fmt.Errorf("commit: %s: %w", full, err)
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattrPrefix+k] = v
	}
	return hdr, nil
}

func (d *diffWriter) copyContent(full string, size int64) error {
	// A metadata-only copy-up keeps its data in the lower file its xattr
	// names: the layer gets that data, as a full file.
	src := full
	if data, err := getXattr(full, whiteout.MetacopyXattr); err == nil && data != "" {
		src = data
	}
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("commit: %s: %w", full, err)
	}
	defer f.Close()
	n, err := io.Copy(d.tw, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("file shrank while committing (%d of %d bytes)", n, size)
	}
	if err != nil {
		return fmt.Errorf("commit: %s: %w", full, err)
	}
	return nil
}

// readXattrs lists the xattrs of path (not following it), minus the union's own.
func readXattrs(path string) (map[string]string, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		return nil, err
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || whiteout.IsInternalXattr(name) {
			continue
		}
		val, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, fs.ErrPermission) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xattr %s: %w", name, err)
		}
		out[name] = val
	}
	return out, nil
}

func getXattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}
