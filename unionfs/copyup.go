package unionfs

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/internal/units"
	"github.com/unionfsd/unionfsd/whiteout"
)

// toNode returns our node behind an inode's operations (the root is a *Root).
func toNode(e fs.InodeEmbedder) *node {
	switch v := e.(type) {
	case *node:
		return v
	case *Root:
		return &v.node
	}
	return nil
}

// parentNode returns the node's parent directory, nil for the root or an
// unlinked node.
func (n *node) parentNode() *node {
	_, p := n.Parent()
	if p == nil {
		return nil
	}
	return toNode(p.Operations())
}

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

// parentRel is the relative path of rel's directory.
func parentRel(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// upperPath is the real path of rel in the upper.
func (u *unionFS) upperPath(rel string) string { return u.layerPath(upperLayer, rel) }

// createWhiteout writes the OCI whiteout for dir/name in the upper: a hard
// link to one shared empty file in the workdir, as overlay links its 0/0
// whiteouts to one shared device. A link is atomic and much cheaper than a
// new inode (rm -rf of a lower tree makes one whiteout per file). The
// whiteout is still an empty regular file under its .wh. name, which is all
// the OCI rules look at; exports write each as a file of its own.
func (u *unionFS) createWhiteout(dir, name string) error {
	p := joinRel(dir, whiteout.Name(name))
	err := u.at(upperLayer, p, u.linkWhiteout)
	if errors.Is(err, syscall.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("whiteout %s: %w", u.upperPath(p), err)
	}
	u.note("whiteout %s", u.upperPath(p))
	return nil
}

// sharedWhiteoutName is the file in the workdir every whiteout links to.
const sharedWhiteoutName = "whiteout"

// linkWhiteout links name in dir to the shared whiteout, making a new one
// when it is missing or has as many links as the filesystem allows; if
// linking is not possible at all, name gets an empty file of its own.
func (u *unionFS) linkWhiteout(dir int, name string) error {
	work := u.cow.WorkFd()
	err := unix.Linkat(work, sharedWhiteoutName, dir, name, 0)
	if err == syscall.ENOENT || err == syscall.EMLINK {
		if err = u.newSharedWhiteout(); err == nil {
			err = unix.Linkat(work, sharedWhiteoutName, dir, name, 0)
		}
	}
	if err == nil || err == syscall.EEXIST {
		return err
	}
	return unix.Mknodat(dir, name, syscall.S_IFREG, 0)
}

// newSharedWhiteout puts a fresh empty file at the shared whiteout's name,
// atomically.
func (u *unionFS) newSharedWhiteout() error {
	work, tmp := u.cow.WorkFd(), u.cow.TempName()
	if err := unix.Mknodat(work, tmp, syscall.S_IFREG, 0); err != nil {
		return err
	}
	if err := unix.Renameat(work, tmp, work, sharedWhiteoutName); err != nil {
		unix.Unlinkat(work, tmp, 0)
		return err
	}
	return nil
}

// removeWhiteout deletes the upper's whiteout for dir/name if there is one.
func (u *unionFS) removeWhiteout(dir, name string) error {
	if !whiteout.NameFits(name) {
		return nil
	}
	p := joinRel(dir, whiteout.Name(name))
	err := u.at(upperLayer, p, func(d int, n string) error { return unix.Unlinkat(d, n, 0) })
	if err == nil {
		u.note("removed whiteout %s", u.upperPath(p))
	}
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("remove whiteout %s: %w", u.upperPath(p), err)
}

// clearUpperDir removes the whiteouts and markers of an upper directory whose
// merged view is empty, so the directory itself can be removed or replaced.
func (u *unionFS) clearUpperDir(rel string) error {
	return u.inDir(upperLayer, rel, func(dir int) error {
		ents, err := readDirentsFd(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.name == "." || e.name == ".." {
				continue
			}
			if !whiteout.IsWhiteoutName(e.name) && !(e.dtype == syscall.DT_CHR && isOverlayWhiteoutAt(dir, e.name)) {
				return syscall.ENOTEMPTY
			}
			if err := cow.RemoveAllAt(dir, e.name); err != nil {
				return err
			}
		}
		return nil
	})
}

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
