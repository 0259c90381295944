package unionfs

import (
	"context"
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/whiteout"
)

// Rename moves name in n to newName in newParent. Files are copied up and
// renamed in the upper; a directory that lives only in the upper is renamed
// as is; a directory with lower parts is copied up whole to its new name
// (OCI layers cannot express overlay's redirects), so renaming never fails
// with EXDEV.
//
// The caller (rawFS.Rename) holds u.mu for writing, until go-fuse has moved
// the node in its tree too: no operation computes a path from a tree that
// disagrees with the upper. Once the rename has happened in the upper no
// step fails the operation: what follows is cleanup whose failure changes
// nothing in the merged view.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) (eno syscall.Errno) {
	np := toNode(newParent)
	if np == nil {
		return syscall.EXDEV
	}
	if e := validName(newName); e != 0 {
		return e
	}
	tr := n.u.trace("rename", joinRel(n.rel(), name))
	tr.arg("to /%s", joinRel(np.rel(), newName))
	defer func() { n.u.endLockedOp(tr, eno) }()
	// Both paths may lead elsewhere afterwards, whatever the outcome.
	defer n.u.dropTree(joinRel(np.rel(), newName))
	defer n.u.dropTree(joinRel(n.rel(), name))
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
	if eno := n.hideLowersFor(src); eno != 0 {
		return eno
	}
	if eno := n.renameInUpper(src, np, dst); eno != 0 || !moved {
		return eno
	}
	n.u.dropMarkersAfterMove(joinRel(dst.dirRel, dst.name))
	return 0
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
// rename, then the destination's stale whiteout goes. Every step before the
// rename leaves the merged view as it was, so a failure reports a rename
// that did not happen; the steps after it cannot fail the rename.
func (n *node) renameInUpper(src *removal, np *node, dst *target) syscall.Errno {
	u := n.u
	sdir, sname, err := u.openParent(upperLayer, joinRel(src.dirRel, src.name))
	if err != nil {
		return errno(err)
	}
	defer unix.Close(sdir)
	dstRel := joinRel(dst.dirRel, dst.name)
	ddir, dname, err := u.openParent(upperLayer, dstRel)
	if err != nil {
		return errno(err)
	}
	defer unix.Close(ddir)
	// A directory moved into a merged parent is made opaque, so a lower
	// directory of the same name (now or added later) never merges into
	// it; overlay does the same.
	if src.obj.isDir() && dst.merged {
		if err := u.markOpaque(sdir, sname); err != nil {
			return errno(err)
		}
		u.note("opaque %s", u.opaqueMarkName(u.upperPath(dstRel)))
	}
	if src.below && !u.overlayWhiteoutFor(src.name) {
		if err := u.createWhiteout(src.dirRel, src.name); err != nil {
			return errno(err)
		}
	}
	var replaced *syscall.Stat_t
	if dst.obj != nil && u.inUpper(dst.obj.chain) && !dst.obj.isDir() {
		replaced = lastName(ddir, dname)
	}
	var aside string
	if dst.obj != nil && dst.obj.isDir() && u.inUpper(dst.obj.chain) {
		// The upper part of the empty destination directory (whiteouts
		// only) moves into the workdir, and back if the rename fails.
		if aside, err = u.setAside(ddir, dname); err != nil {
			return errno(err)
		}
	}
	if err := u.renameUpper(sdir, sname, ddir, dname, src); err != nil {
		if aside != "" {
			unix.Renameat2(u.cow.WorkFd(), aside, ddir, dname, unix.RENAME_NOREPLACE)
		}
		return errno(err)
	}
	u.forget(replaced)
	if aside != "" {
		u.removeAside(aside)
	}
	if dst.whiteout {
		// Harmless if it stays: an entry beats a whiteout in its layer.
		if err := u.removeWhiteout(dst.dirRel, dst.name); err != nil {
			u.note("left %v", err)
		}
	}
	return 0
}

// setAside moves the upper directory name in dir, which holds nothing but
// whiteouts and markers, into the workdir and returns its name there.
func (u *unionFS) setAside(dir int, name string) (string, error) {
	tmp := u.cow.TempName()
	if err := unix.Renameat2(dir, name, u.cow.WorkFd(), tmp, unix.RENAME_NOREPLACE); err != nil {
		return "", err
	}
	return tmp, nil
}

// removeAside deletes a directory setAside moved out, once it is replaced.
// A failure leaves it in the workdir, which the next start clears.
func (u *unionFS) removeAside(tmp string) {
	work := u.cow.WorkFd()
	u.retire(work, tmp)
	if err := cow.RemoveAllAt(work, tmp); err != nil {
		u.note("left %v", err)
	}
}

// renameUpper does the rename(2) of renameInUpper. With overlay-format
// whiteouts the source's whiteout comes with the rename itself
// (RENAME_WHITEOUT), and a directory taking the place of a 0/0 whiteout
// swaps with it (rename refuses a directory over a non-directory): the
// device then stands at the source, a whiteout if one is needed there.
func (u *unionFS) renameUpper(sdir int, sname string, ddir int, dname string, src *removal) error {
	if src.obj.isDir() && isOverlayWhiteoutAt(ddir, dname) {
		if err := unix.Renameat2(sdir, sname, ddir, dname, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
		// The device now at the source is its whiteout only if one is
		// needed there in this format (an OCI one was made already).
		if !src.below || !u.overlayWhiteoutFor(src.name) {
			if err := unix.Unlinkat(sdir, sname, 0); err != nil {
				u.note("left whiteout: %v", err)
			}
		}
		return nil
	}
	if !src.below || !u.overlayWhiteoutFor(src.name) {
		return unix.Renameat(sdir, sname, ddir, dname)
	}
	err := unix.Renameat2(sdir, sname, ddir, dname, unix.RENAME_WHITEOUT)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EPERM) {
		return u.renameThenWhiteout(sdir, sname, ddir, dname)
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
		restore := u.keepTimes(parentRel(rel))
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
	restore := u.keepTimes(rel)
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

// dropMarkersAfterMove removes, below the upper directory rel, whiteouts
// (both formats) and the opaque marks of subdirectories: once a
// materialized tree has moved away from the lower names they hid, they hide
// nothing. So a failure is no failure of the rename that moved it.
func (u *unionFS) dropMarkersAfterMove(rel string) {
	err := u.inDir(upperLayer, rel, func(dir int) error { return dropMarkers(dir, true) })
	if err != nil {
		u.note("left markers in %s: %v", u.upperPath(rel), err)
	}
}

// dropMarkers does the work of dropMarkersAfterMove in the directory open as
// dir (for reading, from its start).
func dropMarkers(dir int, top bool) error {
	if !top {
		for _, x := range whiteout.OpaqueXattrs {
			fdRemovexattr(dir, x) // absent is fine
		}
	}
	ents, err := readDirentsFd(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		_, isWhiteout := whiteout.Target(e.name)
		isWhiteout = isWhiteout || e.dtype == syscall.DT_CHR && isOverlayWhiteoutAt(dir, e.name)
		if isWhiteout || !top && whiteout.IsOpaqueMarker(e.name) {
			if err := unix.Unlinkat(dir, e.name, 0); err != nil && !errors.Is(err, syscall.ENOENT) {
				return err
			}
			continue
		}
		if e.dtype == syscall.DT_DIR && e.name != "." && e.name != ".." {
			sub, err := unix.Openat(dir, e.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = dropMarkers(sub, false)
			unix.Close(sub)
			if err != nil {
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
	srcRel, dstFull := joinRel(src.dirRel, src.name), joinRel(dstRel, newName)
	sdir, sname, err := u.openParent(upperLayer, srcRel)
	if err != nil {
		return errno(err)
	}
	defer unix.Close(sdir)
	ddir, dname, err := u.openParent(upperLayer, dstFull)
	if err != nil {
		return errno(err)
	}
	defer unix.Close(ddir)
	// A directory moving into a merged parent turns opaque, as in a plain rename.
	if err := u.opaqueIfMerged(sdir, sname, src.obj, np); err != nil {
		return errno(err)
	}
	if err := u.opaqueIfMerged(ddir, dname, dstObj, n); err != nil {
		return errno(err)
	}
	if err := unix.Renameat2(sdir, sname, ddir, dname, unix.RENAME_EXCHANGE); err != nil {
		return errno(err)
	}
	if srcMoved {
		u.dropMarkersAfterMove(dstFull)
	}
	if dstMoved {
		u.dropMarkersAfterMove(srcRel)
	}
	return 0
}

// opaqueIfMerged marks the upper directory name in dir opaque when it is
// about to move into the merged directory parent.
func (u *unionFS) opaqueIfMerged(dir int, name string, obj *found, parent *node) error {
	if !obj.isDir() || len(lowerPart(u, parent.getChain())) == 0 {
		return nil
	}
	return u.markOpaque(dir, name)
}

// upperOnlyOrFile reports whether obj can take part in a rename(2) in the
// upper: any non-directory (it can be copied up) or an upper-only directory.
func upperOnlyOrFile(u *unionFS, obj *found) bool {
	return !obj.isDir() || u.inUpper(obj.chain) && len(obj.chain) == 1
}
