package cow

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// CopyUpMeta makes dst a metadata-only copy of the regular file src: an
// empty file of src's size (one hole, so st_size is right and no data is
// written), src's owner, mode, xattrs and times, and the xattr name=value,
// which tells the caller where the data still is. Like CopyUp it is built in
// the workdir and renamed into place; dst must not exist.
func (e *Engine) CopyUpMeta(src, dst At, name string, value []byte) (unix.Stat_t, error) {
	st, err := e.copyUpMeta(src, dst, name, value)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("metadata copy-up %s: %w", src.Name, err)
	}
	return st, nil
}

func (e *Engine) copyUpMeta(src, dst At, name string, value []byte) (unix.Stat_t, error) {
	var st unix.Stat_t
	if e.closed.Load() {
		return st, os.ErrClosed
	}
	if err := e.checkDst(dst); err != nil {
		return st, err
	}
	srcFd, err := openPath(src)
	if err != nil {
		return st, err
	}
	defer unix.Close(srcFd)
	if err := unix.Fstat(srcFd, &st); err != nil {
		return st, &os.PathError{Op: "lstat", Path: src.Name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, &os.PathError{Op: "metacopy", Path: src.Name, Err: unix.EINVAL}
	}
	tmp := e.tempName()
	err = e.buildMeta(srcFd, tmp, &st, name, value)
	if err == nil {
		// No fsync, of the entry or its directory, as overlay's metacopy:
		// there is no data to make durable, and a journaling filesystem
		// commits the entry's inode changes no later than the rename.
		err = e.commit(tmp, dst, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		e.removeTemp(tmp)
		return st, err
	}
	return lstatAt(dst)
}

func (e *Engine) buildMeta(src int, tmp string, st *unix.Stat_t, name string, value []byte) error {
	f, err := e.createTemp(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(st.Size); err != nil {
		return err
	}
	if err := unix.Fsetxattr(int(f.Fd()), name, value, 0); err != nil {
		return &os.PathError{Op: "setxattr " + name, Path: tmp, Err: err}
	}
	if err := e.applyMetaAt(src, metaTarget{name: tmp, fd: int(f.Fd())}, st); err != nil {
		return err
	}
	return f.Close()
}

// CopyUpData completes a metadata-only copy: the file dst is replaced,
// atomically, by one with the data of dataSrc (its first size bytes when
// size >= 0) and dst's own owner, mode, xattrs (minus Options.SkipXattr,
// which drops the metadata-copy marker) and times. Readers see either the
// metadata copy or the full file, never a partial one.
func (e *Engine) CopyUpData(dataSrc, dst At, size int64) (unix.Stat_t, error) {
	st, err := e.copyUpData(dataSrc, dst, size)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("data copy-up %s: %w", dataSrc.Name, err)
	}
	return st, nil
}

func (e *Engine) copyUpData(dataSrc, dst At, size int64) (unix.Stat_t, error) {
	in, err := openSource(dataSrc)
	if err != nil {
		return unix.Stat_t{}, err
	}
	defer in.Close()
	return e.copyUpDataFrom(in, dst, size)
}

// CopyUpDataFrom is CopyUpData with the data read from in, a file the
// caller opened (beneath a layer root, with no symlink followed).
func (e *Engine) CopyUpDataFrom(in *os.File, dst At, size int64) (unix.Stat_t, error) {
	st, err := e.copyUpDataFrom(in, dst, size)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("data copy-up %s: %w", in.Name(), err)
	}
	return st, nil
}

func (e *Engine) copyUpDataFrom(in *os.File, dst At, size int64) (unix.Stat_t, error) {
	var meta unix.Stat_t
	if e.closed.Load() {
		return meta, os.ErrClosed
	}
	metaFd, err := openPath(dst)
	if err != nil {
		return meta, err
	}
	defer unix.Close(metaFd)
	if err := unix.Fstat(metaFd, &meta); err != nil {
		return meta, &os.PathError{Op: "lstat", Path: dst.Name, Err: err}
	}
	var src unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &src); err != nil {
		return meta, &os.PathError{Op: "fstat", Path: in.Name(), Err: err}
	}
	tmp := e.tempName()
	err = e.buildData(in, &src, metaFd, tmp, &meta, size)
	if err == nil {
		err = e.commit(tmp, dst, 0)
	}
	if err != nil {
		e.removeTemp(tmp)
		return meta, err
	}
	return lstatAt(dst)
}

func (e *Engine) buildData(in *os.File, src *unix.Stat_t, metaSrc int, tmp string, meta *unix.Stat_t, size int64) error {
	out, err := e.createTemp(tmp)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := e.writeFile(in, src, out, metaTarget{name: tmp, fd: int(out.Fd())}, metaSrc, meta, size); err != nil {
		return err
	}
	return out.Close()
}
