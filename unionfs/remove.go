package unionfs

import (
	"context"
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// removal is a name about to disappear from the merged view.
type removal struct {
	dirRel string
	name   string
	obj    *found
	// below: a lower layer still holds the name, so the upper needs a whiteout.
	below bool
}

// resolveRemoval resolves name in n for unlink/rmdir/rename. It changes
// nothing, so an operation that then fails its checks leaves the upper as it
// was (overlay checks before it copies up, too). The caller holds u.mu.
func (n *node) resolveRemoval(name string) (*removal, syscall.Errno) {
	if !n.u.rw {
		return nil, syscall.EROFS
	}
	r := &removal{dirRel: n.rel(), name: name}
	obj, err := n.u.resolve(n.getChain(), r.dirRel, name)
	if err != nil {
		return nil, errno(err)
	}
	r.obj = obj
	// An object that shows from a lower layer, or a directory merged with
	// one, is below by itself; only an upper-only object needs a look for
	// a hidden lower name.
	if !n.u.inUpper(obj.chain) || len(obj.chain) > 1 {
		r.below = true
		return r, 0
	}
	r.below, err = n.u.existsBelow(n.getChain(), r.dirRel, name)
	if err != nil {
		return nil, errno(err)
	}
	return r, 0
}

// Unlink removes a non-directory. The whiteout is written before the upper
// entry goes: an entry beats a whiteout in its own layer, so every
// intermediate state shows either the old file or nothing. The caller
// (rawFS.Unlink) holds u.mu for writing.
func (n *node) Unlink(ctx context.Context, name string) (eno syscall.Errno) {
	tr := n.u.trace("unlink", joinRel(n.rel(), name))
	defer func() { n.u.endLockedOp(tr, eno) }()
	r, eno := n.resolveRemoval(name)
	if eno != 0 {
		return eno
	}
	if r.obj.isDir() {
		return syscall.EISDIR
	}
	if eno := n.checkStickyRemoval(ctx, &r.obj.st); eno != 0 {
		return eno
	}
	if err := n.copyUp(-1); err != nil {
		return errno(err)
	}
	if eno := n.hideLowersFor(r); eno != 0 {
		return eno
	}
	if r.below && n.u.overlayWhiteoutFor(name) {
		return errno(n.u.whiteoutInPlace(r.dirRel, name, n.u.inUpper(r.obj.chain)))
	}
	if r.below {
		if err := n.u.createWhiteout(r.dirRel, name); err != nil {
			return errno(err)
		}
	}
	if n.u.inUpper(r.obj.chain) {
		err := n.u.at(upperLayer, joinRel(r.dirRel, name), func(dir int, name string) error {
			n.u.retire(dir, name)
			return unix.Unlinkat(dir, name, 0)
		})
		if err != nil {
			return errno(err)
		}
	}
	return 0
}

// Rmdir removes a directory that is empty in the merged view. The caller
// (rawFS.Rmdir) holds u.mu for writing.
func (n *node) Rmdir(ctx context.Context, name string) (eno syscall.Errno) {
	tr := n.u.trace("rmdir", joinRel(n.rel(), name))
	defer func() { n.u.endLockedOp(tr, eno) }()
	defer n.u.dropTree(joinRel(n.rel(), name))
	r, eno := n.resolveRemoval(name)
	if eno != 0 {
		return eno
	}
	if !r.obj.isDir() {
		return syscall.ENOTDIR
	}
	if eno := n.checkStickyRemoval(ctx, &r.obj.st); eno != 0 {
		return eno
	}
	childRel := joinRel(r.dirRel, name)
	if eno := n.u.checkEmpty(r.obj.chain, childRel); eno != 0 {
		return eno
	}
	if err := n.copyUp(-1); err != nil {
		return errno(err)
	}
	if eno := n.hideLowersFor(r); eno != 0 {
		return eno
	}
	if r.below && n.u.overlayWhiteoutFor(name) {
		if n.u.inUpper(r.obj.chain) {
			if err := n.u.clearUpperDir(childRel); err != nil {
				return errno(err)
			}
		}
		return errno(n.u.whiteoutInPlace(r.dirRel, name, n.u.inUpper(r.obj.chain)))
	}
	if r.below {
		if err := n.u.createWhiteout(r.dirRel, name); err != nil {
			return errno(err)
		}
	}
	if n.u.inUpper(r.obj.chain) {
		if err := n.u.removeUpperDir(childRel); err != nil {
			if r.below {
				n.u.removeWhiteout(r.dirRel, name)
			}
			return errno(err)
		}
	}
	return 0
}

// hideLowersFor takes the last resort of needsOpaqueParent when removing
// r's lower name: n hides its lowers itself, r's object is then an upper
// one that needs no whiteout.
func (n *node) hideLowersFor(r *removal) syscall.Errno {
	if !r.below || !n.u.needsOpaqueParent(r.name) {
		return 0
	}
	if err := n.hideLowers(); err != nil {
		return errno(err)
	}
	r.below = false
	r.obj.chain = []int{upperLayer}
	return 0
}

// checkEmpty returns ENOTEMPTY unless the merged directory has no entries.
func (u *unionFS) checkEmpty(chain []int, rel string) syscall.Errno {
	ents, err := u.readMerged(chain, rel)
	if err != nil {
		return errno(err)
	}
	if len(ents) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

// removeUpperDir deletes an upper directory that holds only whiteouts.
func (u *unionFS) removeUpperDir(rel string) error {
	if err := u.clearUpperDir(rel); err != nil {
		return err
	}
	err := u.at(upperLayer, rel, func(dir int, name string) error {
		u.retire(dir, name)
		return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
	})
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}
