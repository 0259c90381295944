package unionfs

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/internal/units"
)

// copyUp makes n present in the upper, parent directories first, each with
// its own metadata. Directories get metadata only; files their data, or only
// the first size bytes when size >= 0. The caller holds u.mu for writing.
func (n *node) copyUp(size int64) error {
	chain := n.getChain()
	if n.u.inUpper(chain) {
		return n.completeMetacopy(size)
	}
	if !n.u.rw {
		return syscall.EROFS
	}
	parent := n.parentNode()
	if parent == nil {
		return syscall.ENOENT
	}
	if err := parent.copyUp(-1); err != nil {
		return err
	}
	rel := n.rel()
	restore := n.u.keepTimes(parentRel(rel))
	start := time.Now()
	st, err := n.u.copyUpPath(chain[0], rel, size)
	restore()
	if err != nil {
		return err
	}
	n.u.note("copy-up /%s from layer %d (%s), %s, %s", rel, chain[0], n.u.layers[chain[0]].path,
		units.Bytes(st.Size), time.Since(start).Round(10*time.Microsecond))
	n.u.copiedIno[st.Ino] = n.StableAttr()
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		n.setChain(append([]int{upperLayer}, chain...))
	} else {
		n.setChain([]int{upperLayer})
	}
	return nil
}

// copyUpPath copies the object rel of layer li into the upper through the
// workdir; the upper parent must exist.
func (u *unionFS) copyUpPath(li int, rel string, size int64) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := u.at(li, rel, func(sdir int, name string) error {
		return u.at(upperLayer, rel, func(ddir int, _ string) (err error) {
			st, err = u.cow.CopyUp(cow.At{Dir: sdir, Name: name}, cow.At{Dir: ddir, Name: name}, size)
			return err
		})
	})
	if err != nil {
		return st, fmt.Errorf("copy-up %s: %w", rel, err)
	}
	return st, nil
}

// keepTimes records the times of the upper directory rel and returns a
// func that puts them back: copying a child up is not a change of the
// directory, so its mtime must not move (overlay restores it the same way).
func (u *unionFS) keepTimes(rel string) func() {
	fd, release, err := u.dirFd(upperLayer, rel)
	if err != nil {
		return func() {}
	}
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		release()
		return func() {}
	}
	return func() {
		ts := []unix.Timespec{unix.NsecToTimespec(syscall.TimespecToNsec(st.Atim)), unix.NsecToTimespec(syscall.TimespecToNsec(st.Mtim))}
		futimesFd(fd, ts)
		release()
	}
}

func (u *unionFS) upperPath(rel string) string { return u.layerPath(upperLayer, rel) }

// retire is called before the upper object name in dir loses its last name. It drops the
// object's copy-up mapping and bumps the generation of its inode number, so
// a new object that recycles the number is a new inode to go-fuse and the
// kernel, not the old one (whose node may still be held open).
func (u *unionFS) retire(dir int, name string) {
	u.forget(lastName(dir, name))
}

// lastName stats name in dir when it is the object's last name (a
// directory's only one), else returns nil.
func lastName(dir int, name string) *syscall.Stat_t {
	var st syscall.Stat_t
	if lstatAt(dir, name, &st) == nil && (st.Nlink <= 1 || st.Mode&syscall.S_IFMT == syscall.S_IFDIR) {
		return &st
	}
	return nil
}

// forget drops the mappings of an object that lost its last name (st from
// lastName; nil: nothing to do).
func (u *unionFS) forget(st *syscall.Stat_t) {
	if st != nil {
		delete(u.copiedIno, st.Ino)
		u.reusedIno[st.Ino]++
	}
}
