package unionfs

import (
	"context"
	"errors"
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
	if eno := n.checkStickyRemoval(ctx, &src.obj.st); eno != 0 {
		return eno
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		if eno := np.checkStickyExchange(ctx, newName); eno != 0 {
			return eno
		}
		return n.exchange(src, np, newName)
	}
	if flags&^uint32(unix.RENAME_NOREPLACE) != 0 {
		return syscall.EINVAL
	}
	dst, eno := np.resolveTarget(src.obj, newName, flags)
	if eno != 0 {
		return eno
	}
	if dst.obj != nil {
		if eno := np.checkStickyRemoval(ctx, &dst.obj.st); eno != 0 {
			return eno
		}
	}
	if err := n.copyUp(-1); err != nil {
		return errno(err)
	}
	if err := np.copyUp(-1); err != nil {
		return errno(err)
	}
	moved := !upperOnlyOrFile(n.u, src.obj)
	if err := n.materialize(src); err != nil {
		return errno(err)
	}
	if eno := n.renameInUpper(src, np, dst); eno != 0 || !moved {
		return eno
	}
	return errno(dropMarkers(n.u.upperPath(joinRel(dst.dirRel, dst.name)), true))
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
	if t.whiteout, err = np.u.upperWhiteout(t.dirRel, name); err != nil {
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
		if err := u.markOpaque(srcPath); err != nil {
			return errno(err)
		}
		u.note("opaque %s", u.opaqueMarkName(u.upperPath(dstRel)))
	}
	if src.below && !u.overlayFormat() {
		if err := u.createWhiteout(src.dirRel, src.name); err != nil {
			return errno(err)
		}
	}
	dstPath := u.upperPath(dstRel)
	if dst.obj != nil && u.inUpper(dst.obj.chain) && !dst.obj.isDir() {
		u.retire(dstPath)
	}
	if err := u.renameUpper(srcPath, dstPath, src, dst); err != nil {
		return errno(err)
	}
	if dst.whiteout {
		if err := u.removeWhiteout(dst.dirRel, dst.name); err != nil {
			return errno(err)
		}
	}
	return 0
}

// renameUpper does the rename(2) of renameInUpper. With overlay-format
// whiteouts the source's whiteout comes with the rename itself
// (RENAME_WHITEOUT), and a directory taking the place of a 0/0 whiteout
// swaps with it (rename refuses a directory over a non-directory): the
// device then stands at the source, a whiteout if one is needed there.
func (u *unionFS) renameUpper(srcPath, dstPath string, src *removal, dst *target) error {
	if !u.overlayFormat() {
		return syscall.Rename(srcPath, dstPath)
	}
	if src.obj.isDir() && isOverlayWhiteoutAt(u.upperPath(dst.dirRel), dst.name) {
		if err := unix.Renameat2(unix.AT_FDCWD, srcPath, unix.AT_FDCWD, dstPath, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
		if !src.below {
			return syscall.Unlink(srcPath)
		}
		return nil
	}
	if !src.below {
		return syscall.Rename(srcPath, dstPath)
	}
	err := unix.Renameat2(unix.AT_FDCWD, srcPath, unix.AT_FDCWD, dstPath, unix.RENAME_WHITEOUT)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EPERM) {
		// No RENAME_WHITEOUT here (filesystem or privilege): rename, then
		// make the device; the lower name shows for the moment in between.
		if err := syscall.Rename(srcPath, dstPath); err != nil {
			return err
		}
		return unix.Mknod(srcPath, unix.S_IFCHR, 0)
	}
	return err
}

// copyUpChild copies up the source of a rename through its node, so the
// node keeps its inode number and learns its new layer.
func (n *node) copyUpChild(src *removal) error {
	if n.u.inUpper(src.obj.chain) {
		return nil
	}
	if child := n.GetChild(src.name); child != nil {
		if cn := toNode(child.Operations()); cn != nil {
			return cn.copyUpMeta()
		}
	}
	_, err := n.u.copyUpPath(src.obj.chain[0], joinRel(src.dirRel, src.name), -1)
	return err
}

// materializeDir copies up, in place, everything of the merged directory
// rel that still comes from lower layers: afterwards the upper holds the
// whole tree and it can be renamed with rename(2) (OCI layers cannot express
// overlay's redirects). Every step copies one object up without changing the
// merged view (whiteouts stay until the tree has moved), so a crash at any
// point leaves a consistent tree; upper parts stay where they are, keeping
// their hard links. The caller holds u.mu.
func (u *unionFS) materializeDir(chain []int, rel string, id fs.StableAttr) error {
	if !u.inUpper(chain) {
		restore := keepTimes(u.upperPath(parentRel(rel)))
		st, err := u.copyUpPath(chain[0], rel, -1)
		restore()
		if err != nil {
			return err
		}
		u.copiedIno[st.Ino] = id
		chain = append([]int{upperLayer}, chain...)
	}
	if len(chain) == 1 {
		return nil
	}
	restore := keepTimes(u.upperPath(rel))
	defer restore()
	ents, err := u.readMerged(chain, rel)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := u.materializeEntry(chain, rel, e.name); err != nil {
			return err
		}
	}
	u.note("copy-up tree /%s", rel)
	return nil
}

// materializeEntry brings one entry of a merged directory wholly into the upper.
func (u *unionFS) materializeEntry(chain []int, rel, name string) error {
	child, err := u.resolve(chain, rel, name)
	if err != nil {
		return err
	}
	childRel := joinRel(rel, name)
	id := u.identity(child.chain[0], &child.st, childRel)
	if child.isDir() {
		return u.materializeDir(child.chain, childRel, id)
	}
	if u.inUpper(child.chain) {
		return nil
	}
	st, err := u.copyUpPath(child.chain[0], childRel, -1)
	if err != nil {
		return err
	}
	u.copiedIno[st.Ino] = id
	return nil
}

// dropMarkers removes, below the upper directory path, whiteouts (both
// formats) and the opaque marks of subdirectories: once a materialized tree
// has moved away from the lower names they hid, they hide nothing.
func dropMarkers(path string, top bool) error {
	if !top {
		for _, x := range whiteout.OpaqueXattrs {
			unix.Lremovexattr(path, x) // absent is fine
		}
	}
	ents, err := readDirents(path)
	if err != nil {
		return err
	}
	for _, e := range ents {
		_, isWhiteout := whiteout.Target(e.name)
		isWhiteout = isWhiteout || e.dtype == syscall.DT_CHR && isOverlayWhiteoutAt(path, e.name)
		if isWhiteout || !top && whiteout.IsOpaqueMarker(e.name) {
			if err := syscall.Unlink(path + "/" + e.name); err != nil && !errors.Is(err, syscall.ENOENT) {
				return err
			}
			continue
		}
		if e.dtype == syscall.DT_DIR && e.name != "." && e.name != ".." {
			if err := dropMarkers(path+"/"+e.name, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// materialize makes r's object a self-contained upper object in place (see
// materializeDir), and records that the node's subtree lives in the upper.
func (n *node) materialize(r *removal) error {
	if upperOnlyOrFile(n.u, r.obj) {
		return n.copyUpChild(r)
	}
	rel := joinRel(r.dirRel, r.name)
	if err := n.u.materializeDir(r.obj.chain, rel, n.u.identity(r.obj.chain[0], &r.obj.st, rel)); err != nil {
		return err
	}
	if child := n.GetChild(r.name); child != nil {
		markUpperOnly(child)
	}
	r.obj.chain = []int{upperLayer}
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
// whiteout is needed. Each side is first made a self-contained upper object
// (a file copied up, a directory with lower parts copied whole), then the
// two are swapped with one renameat2 in the upper.
func (n *node) exchange(src *removal, np *node, newName string) syscall.Errno {
	u := n.u
	dstRel := np.rel()
	dstObj, err := u.resolve(np.getChain(), dstRel, newName)
	if err != nil {
		return errno(err)
	}
	dst := &removal{dirRel: dstRel, name: newName, obj: dstObj}
	if err := n.copyUp(-1); err != nil {
		return errno(err)
	}
	if err := np.copyUp(-1); err != nil {
		return errno(err)
	}
	srcMoved, dstMoved := !upperOnlyOrFile(u, src.obj), !upperOnlyOrFile(u, dstObj)
	for _, side := range []struct {
		dir *node
		r   *removal
	}{{n, src}, {np, dst}} {
		if err := side.dir.materialize(side.r); err != nil {
			return errno(err)
		}
	}
	srcPath, dstPath := u.upperPath(joinRel(src.dirRel, src.name)), u.upperPath(joinRel(dstRel, newName))
	// A directory moving into a merged parent turns opaque, as in a plain rename.
	if err := u.opaqueIfMerged(srcPath, src.obj, np); err != nil {
		return errno(err)
	}
	if err := u.opaqueIfMerged(dstPath, dstObj, n); err != nil {
		return errno(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, srcPath, unix.AT_FDCWD, dstPath, unix.RENAME_EXCHANGE); err != nil {
		return errno(err)
	}
	if srcMoved {
		if err := dropMarkers(dstPath, true); err != nil {
			return errno(err)
		}
	}
	if dstMoved {
		return errno(dropMarkers(srcPath, true))
	}
	return 0
}

// opaqueIfMerged marks the upper directory at path opaque when it is about
// to move into the merged directory parent.
func (u *unionFS) opaqueIfMerged(path string, obj *found, parent *node) error {
	if !obj.isDir() || len(lowerPart(u, parent.getChain())) == 0 {
		return nil
	}
	return u.markOpaque(path)
}

// upperOnlyOrFile reports whether obj can take part in a rename(2) in the
// upper: any non-directory (it can be copied up) or an upper-only directory.
func upperOnlyOrFile(u *unionFS, obj *found) bool {
	return !obj.isDir() || u.inUpper(obj.chain) && len(obj.chain) == 1
}

// removeTree deletes a real directory tree in the upper, forgetting the
// inode mappings of what it removes.
func (u *unionFS) removeTree(path string) error {
	ents, err := readDirents(path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if errors.Is(err, syscall.ENOTDIR) {
			u.retire(path)
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
			err = u.removeTree(p)
		} else {
			u.retire(p)
			err = syscall.Unlink(p)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	u.retire(path)
	return syscall.Rmdir(path)
}
