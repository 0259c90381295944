package cow

import (
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// copyData fills out (empty, on device dstDev) with the first
// min(size, target) bytes of in, whose fstat is src, and sets its length to
// target. It clones when the filesystem can (no data moves at all, and it
// reports cloned), else copies only the data segments of a sparse source
// with copy_file_range, else with read/write; holes stay holes either way.
func copyData(in, out *os.File, src *unix.Stat_t, dstDev uint64, target int64) (cloned bool, err error) {
	srcSize := src.Size
	if target > 0 && srcSize > 0 && clone(in, out, devPair{src: src.Dev, dst: dstDev}) {
		if target == srcSize {
			return true, nil
		}
		return true, truncate(out, target)
	}
	limit := min(srcSize, target)
	if mayHaveHoles(src) {
		err = copySegments(in, out, limit)
	} else {
		c := rangeCopier{in: in, out: out}
		err = c.copy(0, limit)
	}
	if err != nil {
		return false, err
	}
	// Sets the final length, which keeps a trailing hole (or makes one when
	// target > srcSize) without writing zeros.
	return false, truncate(out, target)
}

// mayHaveHoles is false when the file has as many blocks as its size needs:
// then looking for holes (two lseeks per data segment) cannot find any.
func mayHaveHoles(st *unix.Stat_t) bool {
	return st.Blocks*512 < st.Size
}

// noClone remembers the (source device, destination device) pairs whose
// FICLONE failed as unsupported, so that each copy-up between them does not
// try (and fail) again.
var noClone sync.Map

type devPair struct{ src, dst uint64 }

// clone shares the whole source extent map with out (FICLONE). Any failure
// just means "copy instead": unsupported filesystem, cross-device, etc.
func clone(in, out *os.File, key devPair) bool {
	if _, no := noClone.Load(key); no {
		return false
	}
	err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	switch err {
	case nil:
		return true
	case unix.EOPNOTSUPP, unix.ENOTTY, unix.EXDEV, unix.ENOSYS:
		noClone.Store(key, struct{}{})
	}
	return false
}

func truncate(f *os.File, size int64) error {
	if err := unix.Ftruncate(int(f.Fd()), size); err != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: err}
	}
	return nil
}

// copySegments copies [0, limit) of in to the same offsets of out, visiting
// only data segments as reported by SEEK_DATA/SEEK_HOLE.
func copySegments(in, out *os.File, limit int64) error {
	c := rangeCopier{in: in, out: out}
	for off := int64(0); off < limit; {
		start, end, err := nextData(in, off, limit)
		if err != nil {
			return err
		}
		if start >= limit {
			return nil
		}
		if err := c.copy(start, end); err != nil {
			return err
		}
		if c.eof {
			return nil
		}
		off = end
	}
	return nil
}

// nextData returns the next data segment [start, end) at or after off,
// clipped to limit; start >= limit means no more data.
func nextData(f *os.File, off, limit int64) (start, end int64, err error) {
	fd := int(f.Fd())
	start, err = unix.Seek(fd, off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO: // only a hole remains
		return limit, limit, nil
	case err == unix.EINVAL: // no SEEK_DATA here: treat everything as data
		return off, limit, nil
	case err != nil:
		return 0, 0, &os.PathError{Op: "seek", Path: f.Name(), Err: err}
	}
	end, err = unix.Seek(fd, start, unix.SEEK_HOLE)
	if err == unix.ENXIO { // file shrank under us
		return start, limit, nil
	}
	if err != nil {
		return 0, 0, &os.PathError{Op: "seek", Path: f.Name(), Err: err}
	}
	return start, min(end, limit), nil
}

// rangeCopier copies byte ranges, in the kernel while it agrees to, then in
// userspace for the rest of the file.
type rangeCopier struct {
	in, out   *os.File
	userspace bool // the kernel refused copy_file_range for this pair
	eof       bool // the source ended before the expected size
}

// maxChunk bounds one copy_file_range call so that a huge file does not
// hold a single syscall for long.
const maxChunk = 1 << 30

func (c *rangeCopier) copy(off, end int64) error {
	for off < end && !c.userspace {
		roff, woff := off, off
		n, err := unix.CopyFileRange(int(c.in.Fd()), &roff, int(c.out.Fd()), &woff, int(min(end-off, maxChunk)), 0)
		switch {
		case err == unix.EINTR:
			continue
		case kernelRefused(err):
			c.userspace = true
			continue
		case err != nil:
			return &os.LinkError{Op: "copy_file_range", Old: c.in.Name(), New: c.out.Name(), Err: err}
		case n == 0:
			c.eof = true
			return nil
		}
		off += int64(n)
	}
	if off < end {
		return c.copyUser(off, end)
	}
	return nil
}

// kernelRefused reports the copy_file_range errors that mean "not for these
// files", as opposed to a real I/O failure.
func kernelRefused(err error) bool {
	return err == unix.EXDEV || err == unix.EINVAL || err == unix.EOPNOTSUPP || err == unix.ENOSYS
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func (c *rangeCopier) copyUser(off, end int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for off < end {
		n, err := c.in.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n > 0 {
			if _, werr := c.out.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			c.eof = true
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
