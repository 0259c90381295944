package layers

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// source gives read access to the members of an image archive or layout by
// their slash-separated names, without ever leaving it.
type source interface {
	// open returns the member's content and size.
	open(name string) (io.ReadCloser, int64, error)
	has(name string) bool
	// where names the archive in messages.
	where() string
	Close() error
}

// maxJSONSize bounds the JSON documents we read whole into memory.
const maxJSONSize = 32 << 20

// readJSONMember reads a small member whole.
func readMember(src source, name string) ([]byte, error) {
	rc, size, err := src.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxJSONSize {
		return nil, fmt.Errorf("%s: %s: %d bytes is too large for a JSON document", src.where(), name, size)
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", src.where(), name, err)
	}
	return data, nil
}

// cleanMemberName validates a name found in a manifest or index: relative,
// no "..". Returns the cleaned name.
func cleanMemberName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("bad path %q (absolute or empty)", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("bad path %q (contains \"..\")", name)
		}
	}
	return path.Clean(name), nil
}

// openSource opens a directory layout, or a tar archive (uncompressed, or
// gzip/zstd-compressed, which is spooled uncompressed into staging first).
func openSource(p, staging string) (source, error) {
	f, err := openNonBlocking(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if st.IsDir() {
		return &dirSource{dir: p, root: f}, nil
	}
	return openTarSource(p, f, staging)
}

// openNonBlocking opens p for reading without waiting on it, and refuses
// anything but a regular file or a directory: opening a FIFO would block
// until someone writes it, a device might never end.
func openNonBlocking(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return checkRegularOrDir(fd, p)
}

// checkRegularOrDir wraps fd, refusing other file types, and makes it
// blocking again (the reads of a regular file never wait anyway).
func checkRegularOrDir(fd int, name string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		unix.Close(fd)
		return nil, fmt.Errorf("not a regular file (%s)", fileType(t))
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func fileType(t uint32) string {
	switch t {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return "a special file"
}

// dirSource reads members of a directory with openat2(RESOLVE_IN_ROOT), so a
// symlink in the layout can never lead outside it.
type dirSource struct {
	dir  string
	root *os.File
}

func (d *dirSource) where() string { return d.dir }
func (d *dirSource) Close() error  { return d.root.Close() }

func (d *dirSource) openFile(name string) (*os.File, error) {
	clean, err := cleanMemberName(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.dir, err)
	}
	fd, err := unix.Openat2(int(d.root.Fd()), clean, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %s: missing (%w)", d.dir, clean, os.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: %s: %w", d.dir, clean, err)
	}
	f, err := checkRegularOrDir(fd, filepath.Join(d.dir, clean))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.dir, clean, err)
	}
	return f, nil
}

func (d *dirSource) open(name string) (io.ReadCloser, int64, error) {
	f, err := d.openFile(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %s: %w", d.dir, name, err)
	}
	return f, st.Size(), nil
}

// has is false only for a missing member: one that is there but cannot be
// read (a FIFO, say) gets its own error from open.
func (d *dirSource) has(name string) bool {
	f, err := d.openFile(name)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	f.Close()
	return true
}

// tarSource indexes the regular-file members of an uncompressed tar by the
// offset of their data, then serves them as sections of the file: one scan,
// no copy, random access for manifest-first or manifest-last archives alike.
type tarSource struct {
	path    string
	f       *os.File
	members map[string]tarMember
}

type tarMember struct {
	off, size int64
	link      string // symlink or hardlink target, resolved at open
	hardlink  bool
}

func openTarSource(p string, f *os.File, staging string) (*tarSource, error) {
	f, err := uncompressArchive(p, f, staging)
	if err != nil {
		return nil, err
	}
	ts := &tarSource{path: p, f: f, members: map[string]tarMember{}}
	if err := ts.scan(); err != nil {
		f.Close()
		return nil, err
	}
	return ts, nil
}

// uncompressArchive returns f itself for a plain tar; a compressed archive
// ("docker save | gzip") is spooled uncompressed to a file in staging.
func uncompressArchive(p string, f *os.File, staging string) (*os.File, error) {
	br := bufio.NewReader(f)
	c, err := detectCompression(br)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if c == Uncompressed {
		return f, nil
	}
	defer f.Close()
	zr, _, err := decompress(f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	defer zr.Close()
	spool, err := os.CreateTemp(staging, "archive-*.tar")
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if _, err := io.Copy(spool, zr); err != nil {
		spool.Close()
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		spool.Close()
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	return spool, nil
}

func (t *tarSource) scan() error {
	st, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("import %s: %w", t.path, err)
	}
	tr := tar.NewReader(t.f)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && n == 0 {
			return fmt.Errorf("import %s: not a tar archive, OCI layout or docker-save archive (%s)", t.path, archiveErr(err))
		}
		if err != nil {
			return fmt.Errorf("import %s: %s", t.path, archiveErr(err))
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			// After Next the file offset is exactly the start of the data.
			off, err := t.f.Seek(0, io.SeekCurrent)
			if err != nil {
				return fmt.Errorf("import %s: %w", t.path, err)
			}
			if off+hdr.Size > st.Size() {
				return fmt.Errorf("import %s: truncated archive: member %s ends past the end of the file", t.path, name)
			}
			t.members[name] = tarMember{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			t.members[name] = tarMember{link: path.Join(path.Dir(name), hdr.Linkname)}
		case tar.TypeLink:
			t.members[name] = tarMember{link: path.Clean(strings.TrimPrefix(hdr.Linkname, "./")), hardlink: true}
		}
	}
	return nil
}

// archiveErr turns tar reader errors into causes a user recognises.
func archiveErr(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated archive (unexpected end of file)"
	}
	if errors.Is(err, tar.ErrHeader) {
		return "not a tar archive or corrupt tar header"
	}
	return err.Error()
}

func (t *tarSource) where() string { return t.path }
func (t *tarSource) Close() error  { return t.f.Close() }

// lookup follows symlink and hardlink members (docker save links duplicate
// layer.tar files) for a bounded number of hops.
func (t *tarSource) lookup(name string) (tarMember, error) {
	clean, err := cleanMemberName(name)
	if err != nil {
		return tarMember{}, fmt.Errorf("%s: %w", t.path, err)
	}
	for hops := 0; hops < 16; hops++ {
		m, ok := t.members[clean]
		if !ok {
			return tarMember{}, fmt.Errorf("%s: %s: missing from the archive (%w)", t.path, name, os.ErrNotExist)
		}
		if m.link == "" {
			return m, nil
		}
		clean = path.Clean(strings.TrimPrefix(m.link, "/"))
	}
	return tarMember{}, fmt.Errorf("%s: %s: too many levels of links", t.path, name)
}

func (t *tarSource) open(name string) (io.ReadCloser, int64, error) {
	m, err := t.lookup(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.NewSectionReader(t.f, m.off, m.size)), m.size, nil
}

func (t *tarSource) has(name string) bool {
	_, err := t.lookup(name)
	return err == nil
}
