package unionfs

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// Rename moves name in n to newName in newParent. Files are copied up and
// renamed in the upper; a directory that lives only in the upper is renamed
// as is; a directory with lower parts is copied up whole to its new name
// (OCI layers cannot express overlay's redirects), so renaming never fails
// with EXDEV.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) (eno syscall.Errno) {
	np := toNode(newParent)
	if np == nil {
		return syscall.EXDEV
	}
	if e := validName(newName); e != 0 {
		return e
	}
	tr := n.u.lockOp("rename", joinRel(n.rel(), name))
	tr.arg("to /%s", joinRel(np.rel(), newName))
	defer func() { n.u.unlockOp(tr, eno) }()
	src, eno := n.resolveRemoval(name)
	if eno != 0 {
		return eno
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		return n.exchange(src, np, newName)
	}
	if flags&^uint32(unix.RENAME_NOREPLACE) != 0 {
		return syscall.EINVAL
	}
	dst, eno := np.resolveTarget(src.obj, newName, flags)
	if eno != 0 {
		return eno
	}
	if err := n.copyUp(-1); err != nil {
		return errno(err)
	}
	if err := np.copyUp(-1); err != nil {
		return errno(err)
	}
	if !upperOnlyOrFile(n.u, src.obj) {
		return n.renameMergedDir(src, np, dst)
	}
	return n.renameInUpper(src, np, dst)
}

// target is the destination of a rename.
type target struct {
	dirRel   string
	name     string
	obj      *found // nil when the name is free
	whiteout bool   // the upper holds .wh.name
	merged   bool   // the destination dir has lower layers
	below    bool   // a lower layer holds the name
}

// resolveTarget checks the destination against the source the way
// rename(2) does, changing nothing.
func (np *node) resolveTarget(srcObj *found, name string, flags uint32) (*target, syscall.Errno) {
	t := &target{dirRel: np.rel(), name: name}
	chain := np.getChain()
	t.merged = len(lowerPart(np.u, chain)) > 0
	obj, err := np.u.resolve(chain, t.dirRel, name)
	switch {
	case err == nil:
		t.obj = obj
	case !errors.Is(err, errNotFound):
		return nil, errno(err)
	}
	if t.whiteout, err = np.u.hasWhiteout(upperLayer, t.dirRel, name); err != nil {
		return nil, errno(err)
	}
	if t.below, err = np.u.existsBelow(chain, t.dirRel, name); err != nil {
		return nil, errno(err)
	}
	if t.obj == nil {
		return t, 0
	}
	if flags&unix.RENAME_NOREPLACE != 0 {
		return nil, syscall.EEXIST
	}
	if srcObj.isDir() && !t.obj.isDir() {
		return nil, syscall.ENOTDIR
	}
	if !srcObj.isDir() && t.obj.isDir() {
		return nil, syscall.EISDIR
	}
	if t.obj.isDir() {
		if eno := np.u.checkEmpty(t.obj.chain, joinRel(t.dirRel, name)); eno != 0 {
			return nil, eno
		}
	}
	return t, 0
}

// renameInUpper renames a file (copied up first) or an upper-only directory
// with rename(2) in the upper. Order keeps every step consistent: the source
// whiteout goes in while the source entry still wins over it, then the
// rename, then the destination's stale whiteout goes.
func (n *node) renameInUpper(src *removal, np *node, dst *target) syscall.Errno {
	u := n.u
	if !src.obj.isDir() {
		if err := n.copyUpChild(src); err != nil {
			return errno(err)
		}
	}
	srcPath := u.upperPath(joinRel(src.dirRel, src.name))
	dstRel := joinRel(dst.dirRel, dst.name)
	if dst.obj != nil && dst.obj.isDir() && u.inUpper(dst.obj.chain) {
		if err := u.removeUpperDir(dstRel); err != nil {
			return errno(err)
		}
	}
	// A directory moved into a merged parent is made opaque, so a lower
	// directory of the same name (now or added later) never merges into
	// it; overlay does the same.
	if src.obj.isDir() && dst.merged {
		if err := touch(srcPath + "/" + whiteout.OpaqueName); err != nil {
			return errno(err)
		}
		u.note("opaque %s/%s", u.upperPath(dstRel), whiteout.OpaqueName)
	}
	if src.below {
		if err := u.createWhiteout(src.dirRel, src.name); err != nil {
			return errno(err)
		}
	}
	dstPath := u.upperPath(dstRel)
	if dst.obj != nil && u.inUpper(dst.obj.chain) && !dst.obj.isDir() {
		u.forgetCopied(dstPath)
	}
	if err := syscall.Rename(srcPath, dstPath); err != nil {
		return errno(err)
	}
	if dst.whiteout {
		if err := u.removeWhiteout(dst.dirRel, dst.name); err != nil {
			return errno(err)
		}
	}
	return 0
}

// copyUpChild copies up the source of a rename through its node, so the
// node keeps its inode number and learns its new layer.
func (n *node) copyUpChild(src *removal) error {
	if n.u.inUpper(src.obj.chain) {
		return nil
	}
	if child := n.GetChild(src.name); child != nil {
		if cn := toNode(child.Operations()); cn != nil {
			return cn.copyUp(-1)
		}
	}
	_, err := n.u.copyUpPath(src.obj.chain[0], joinRel(src.dirRel, src.name), -1)
	return err
}

// renameMergedDir moves a directory that has lower parts: the merged tree is
// copied into the workdir and renamed into place, then the source is removed
// (whiteout plus the upper part). A crash in between leaves both names, never
// neither.
func (n *node) renameMergedDir(src *removal, np *node, dst *target) syscall.Errno {
	u := n.u
	srcRel := joinRel(src.dirRel, src.name)
	dstRel := joinRel(dst.dirRel, dst.name)
	replace := false
	if dst.obj != nil && u.inUpper(dst.obj.chain) {
		if err := u.clearUpperDir(dstRel); err != nil {
			return errno(err)
		}
		replace = true
	}
	srcIno := u.inoOf(src.obj.chain[0], src.obj.st.Ino)
	err := u.cow.Stage(u.upperPath(dstRel), replace, func(tmp string) error {
		if err := u.copyMergedTree(src.obj.chain, srcRel, tmp, srcIno); err != nil {
			return err
		}
		if dst.below {
			return touch(tmp + "/" + whiteout.OpaqueName)
		}
		return nil
	})
	if err != nil {
		return errno(err)
	}
	u.note("copy-up tree /%s to %s", srcRel, u.upperPath(dstRel))
	if dst.below {
		u.note("opaque %s/%s", u.upperPath(dstRel), whiteout.OpaqueName)
	}
	if dst.whiteout {
		if err := u.removeWhiteout(dst.dirRel, dst.name); err != nil {
			return errno(err)
		}
	}
	if src.below {
		if err := u.createWhiteout(src.dirRel, src.name); err != nil {
			return errno(err)
		}
	}
	if u.inUpper(src.obj.chain) {
		if err := removeTree(u.upperPath(srcRel)); err != nil {
			return errno(err)
		}
	}
	if child := n.GetChild(src.name); child != nil {
		markUpperOnly(child)
	}
	return 0
}

// copyMergedTree copies the merged directory rel (merge chain chain) to the
// real path dst: dst itself from the top layer, then every visible entry.
func (u *unionFS) copyMergedTree(chain []int, rel, dst string, shownIno uint64) error {
	st, err := u.cow.CopyUp(u.layerPath(chain[0], rel), dst, -1)
	if err != nil {
		return fmt.Errorf("copy-up %s: %w", rel, err)
	}
	u.copiedIno[st.Ino] = shownIno
	ents, err := u.readMerged(chain, rel)
	if err != nil {
		return err
	}
	for _, e := range ents {
		child, err := u.resolve(chain, rel, e.name)
		if err != nil {
			return err
		}
		childRel := joinRel(rel, e.name)
		childDst := dst + "/" + e.name
		ino := u.inoOf(child.chain[0], child.st.Ino)
		if child.isDir() {
			err = u.copyMergedTree(child.chain, childRel, childDst, ino)
		} else {
			var cst unix.Stat_t
			cst, err = u.cow.CopyUp(u.layerPath(child.chain[0], childRel), childDst, -1)
			if err == nil {
				u.copiedIno[cst.Ino] = ino
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// markUpperOnly records that a moved subtree now lives in the upper alone.
func markUpperOnly(in *fs.Inode) {
	if n := toNode(in.Operations()); n != nil {
		n.setChain([]int{upperLayer})
	}
	for _, c := range in.Children() {
		markUpperOnly(c)
	}
}

// exchange swaps two names (RENAME_EXCHANGE). Both stay occupied, so no
// whiteout is needed; directories with lower parts cannot be swapped in an
// OCI upper and get EXDEV, as overlay gives without redirects.
func (n *node) exchange(src *removal, np *node, newName string) syscall.Errno {
	u := n.u
	dstRel := np.rel()
	dstObj, err := u.resolve(np.getChain(), dstRel, newName)
	if err != nil {
		return errno(err)
	}
	if !upperOnlyOrFile(u, src.obj) || !upperOnlyOrFile(u, dstObj) {
		return syscall.EXDEV
	}
	if err := n.copyUp(-1); err != nil {
		return errno(err)
	}
	if err := np.copyUp(-1); err != nil {
		return errno(err)
	}
	if err := n.copyUpChild(src); err != nil {
		return errno(err)
	}
	dst := &removal{dirRel: dstRel, name: newName, obj: dstObj}
	if err := np.copyUpChild(dst); err != nil {
		return errno(err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, u.upperPath(joinRel(src.dirRel, src.name)),
		unix.AT_FDCWD, u.upperPath(joinRel(dstRel, newName)), unix.RENAME_EXCHANGE)
	return errno(err)
}

// upperOnlyOrFile reports whether obj can take part in a rename(2) in the
// upper: any non-directory (it can be copied up) or an upper-only directory.
func upperOnlyOrFile(u *unionFS, obj *found) bool {
	return !obj.isDir() || u.inUpper(obj.chain) && len(obj.chain) == 1
}

// removeTree deletes a real directory tree in the upper.
func removeTree(path string) error {
	ents, err := readDirents(path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return syscall.Unlink(path)
		}
		return err
	}
	for _, e := range ents {
		if e.name == "." || e.name == ".." {
			continue
		}
		p := path + "/" + e.name
		if e.dtype == syscall.DT_DIR {
			err = removeTree(p)
		} else {
			err = syscall.Unlink(p)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return syscall.Rmdir(path)
}
