package difftest

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// exchangeTmpName is the scratch name an emulated RENAME_EXCHANGE parks one
// side under. It is outside every name pool, so no op ever meets it.
const exchangeTmpName = "difftest-exchange-tmp"

// renameMaybeEmulated is renameat2, falling back on EXDEV to what mv(1)
// does when emulate is set.
//
// Kernel overlay mounted with redirect_dir=off refuses (EXDEV) to rename a
// directory that has lower-layer parts, and so does RENAME_EXCHANGE on one.
// unionfsd must do such renames itself. To compare the outcome we redo the
// move on the overlay side the way mv(1) falls back: create the destination
// with the source's metadata, move every child (files always move on overlay,
// copied up with their data, metadata and hard links intact), remove the
// source. Moving children one by one rather than copying them keeps hard
// links and inode identity, which a direct rename keeps too.
func renameMaybeEmulated(oldp, newp string, flags int, emulate bool) error {
	err := retry(func() error {
		return unix.Renameat2(unix.AT_FDCWD, oldp, unix.AT_FDCWD, newp, uint(flags))
	})
	if !emulate || !errors.Is(err, unix.EXDEV) {
		return err
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		return exchangeByPieces(oldp, newp)
	}
	return moveDirByPieces(oldp, newp)
}

// exchangeByPieces swaps oldp and newp through a scratch name next to oldp.
// Both exist: the kernel checked that before overlay said EXDEV.
func exchangeByPieces(oldp, newp string) error {
	tmp := filepath.Join(filepath.Dir(oldp), exchangeTmpName)
	if err := renameMaybeEmulated(oldp, tmp, 0, true); err != nil {
		return err
	}
	if err := renameMaybeEmulated(newp, oldp, 0, true); err != nil {
		return err
	}
	return renameMaybeEmulated(tmp, newp, 0, true)
}

// moveDirByPieces moves directory oldp to newp child by child. The kernel
// already made the checks that come before overlay's EXDEV (types match, not
// into itself, RENAME_NOREPLACE); the emptiness check of an existing
// destination comes after EXDEV in overlay, so it is made here.
func moveDirByPieces(oldp, newp string) error {
	var st unix.Stat_t
	if err := unix.Lstat(oldp, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.EXDEV // only directories make overlay say EXDEV
	}
	if err := clearDestination(newp); err != nil {
		return err
	}
	if err := unix.Mkdir(newp, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(oldp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		err := renameMaybeEmulated(filepath.Join(oldp, e.Name()), filepath.Join(newp, e.Name()), 0, true)
		if err != nil {
			return err
		}
	}
	if err := copyDirMeta(oldp, newp, &st); err != nil {
		return err
	}
	if err := unix.Rmdir(oldp); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, newp, []unix.Timespec{st.Atim, st.Mtim}, 0)
}

// clearDestination removes an existing empty directory at p; a non-empty
// one is ENOTEMPTY, as rename(2) says.
func clearDestination(p string) error {
	ents, err := os.ReadDir(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return unix.ENOTEMPTY
	}
	return unix.Rmdir(p)
}

// copyDirMeta gives dst the owner, mode and xattrs of src (stat st).
func copyDirMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		v, err := getXattr(src, name, false)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, name, v, 0); err != nil {
			return err
		}
	}
	return nil
}
