package unionfs

import (
	"context"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Squashing (squash_to_uid, squash_to_gid, squash_to_root) shows every file
// as owned by one user or group. The kernel checks permissions against what
// we show (default_permissions), so without care the squash user would get
// owner rights over every file: read a root-only file, chmod u+s a
// root-owned binary and leave a setuid-root copy in the upper. On a root
// mount with allow_other that is an escalation. So on a squashed mount:
//
//   - the mode shown is reduced so that no caller gets more access from the
//     kernel's check than the real owner, group and mode would give it
//     (squashedMode); a caller may get less;
//   - setuid and setgid never show on files, and chmod cannot set them;
//   - the owner-only operations the kernel grants the shown owner (chmod,
//     chown, chgrp, setting times, deleting in a sticky dir, system.*
//     xattrs such as ACLs, hard links under protected_hardlinks) are
//     checked again here against the real owner, and opens against the
//     real mode.
//
// Root callers are not restricted: they pass the kernel's checks anyway.
// Real ids are compared in the mount's id space, after uidmapping/gidmapping.

// squashing reports whether ownership is squashed.
func (u *unionFS) squashing() bool {
	return u.cfg.SquashUID != nil || u.cfg.SquashGID != nil
}

// squashedCaller returns the caller of ctx when the mount squashes
// ownership, so that an owner-only operation must be checked here; nil and
// 0 when it does not. A request without a caller is refused with deny.
func (u *unionFS) squashedCaller(ctx context.Context, deny syscall.Errno) (*fuse.Caller, syscall.Errno) {
	if !u.squashing() {
		return nil, 0
	}
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return nil, deny
	}
	return c, 0
}

// realOwner is the owner of a layer object in the mount's id space.
func (u *unionFS) realOwner(st *syscall.Stat_t) (uid, gid uint32) {
	return toContainer(u.cfg.UIDMap, st.Uid), toContainer(u.cfg.GIDMap, st.Gid)
}

// showSquashedMode rewrites out.Mode of the object st on a squashed mount;
// out.Uid and out.Gid already hold the shown owner.
func (u *unionFS) showSquashedMode(out *fuse.Attr, st *syscall.Stat_t) {
	if !u.squashing() {
		return
	}
	ru, rg := u.realOwner(st)
	out.Mode = squashedMode(out.Mode, ru, rg, out.Uid, out.Gid)
}

// squashedMode returns the mode to show for an object with mode, real owner
// ru:rg, shown as owned by su:sg. The kernel gives the shown owner the
// owner bits, members of sg the group bits and the rest the other bits;
// each class is shown only the access every caller who may fall into it
// really has. Who is in which group is not known here, so a class that may
// hold a member of the real group and a non-member gets the AND of both.
// With nothing squashed (su == ru, sg == rg) the mode is unchanged.
func squashedMode(mode, ru, rg, su, sg uint32) uint32 {
	const all = 0o7
	o, g, t := (mode>>6)&all, (mode>>3)&all, mode&all
	// Who may the callers of each shown class really be?
	ownerBits := o // the shown owner su
	if su != ru {
		ownerBits = g & t
	}
	notOwner := uint32(all) // callers other than su: may one be ru?
	if su != ru {
		notOwner = o
	}
	groupBits, otherBits := notOwner&g&t, notOwner&g&t
	if sg == rg {
		// Members of sg are real group members, the rest are not.
		groupBits, otherBits = notOwner&g, notOwner&t
	}
	special := mode & unix.S_ISVTX
	if mode&unix.S_IFMT == unix.S_IFDIR {
		special = mode & (unix.S_ISVTX | unix.S_ISGID)
	}
	return mode&unix.S_IFMT | special | ownerBits<<6 | groupBits<<3 | otherBits
}

// checkSquashedSetattr refuses, on a squashed mount, the changes that only
// the real owner (or root) may make, and drops setuid/setgid from a new
// mode of a file. st is the object as it is in its layer.
func (u *unionFS) checkSquashedSetattr(in *fuse.SetAttrIn, st *syscall.Stat_t) syscall.Errno {
	if !u.squashing() {
		return 0
	}
	if m, ok := in.GetMode(); ok && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		in.Mode = m &^ (unix.S_ISUID | unix.S_ISGID)
	}
	c := &in.Caller
	if c.Uid == 0 {
		return 0
	}
	ru, _ := u.realOwner(st)
	owner := c.Uid == ru
	if _, ok := in.GetMode(); ok && !owner {
		return syscall.EPERM
	}
	if uid, ok := in.GetUID(); ok && uid != ru {
		return syscall.EPERM // chown to another user needs CAP_CHOWN
	}
	if _, ok := in.GetGID(); ok && !owner {
		return syscall.EPERM // the kernel checked the caller is in the new group
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 && !owner {
		now := in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_ATIME_NOW) != fuse.FATTR_ATIME &&
			in.Valid&(fuse.FATTR_MTIME|fuse.FATTR_MTIME_NOW) != fuse.FATTR_MTIME
		if !now || !u.realAccess(c, st, unix.W_OK) {
			return syscall.EPERM
		}
	}
	return 0
}

// checkSquashedSticky refuses, on a squashed mount, removing or renaming
// victim out of the sticky dir dir unless the caller really owns one of
// them (the kernel asked only whether it owns what we show).
func (u *unionFS) checkSquashedSticky(c *fuse.Caller, dir, victim *syscall.Stat_t) syscall.Errno {
	if !u.squashing() || c.Uid == 0 || dir.Mode&unix.S_ISVTX == 0 {
		return 0
	}
	du, _ := u.realOwner(dir)
	vu, _ := u.realOwner(victim)
	if c.Uid != du && c.Uid != vu {
		return syscall.EPERM
	}
	return 0
}

// checkStickyRemoval applies checkSquashedSticky to removing the object
// victim (resolved in the layers) from the directory n.
func (n *node) checkStickyRemoval(ctx context.Context, victim *syscall.Stat_t) syscall.Errno {
	c, eno := n.u.squashedCaller(ctx, syscall.EPERM)
	if c == nil {
		return eno
	}
	var dir syscall.Stat_t
	if err := n.u.lstat(n.getChain()[0], n.rel(), &dir); err != nil {
		return errno(err)
	}
	return n.u.checkSquashedSticky(c, &dir, victim)
}

// checkStickyExchange applies checkStickyRemoval to name in n, which a
// RENAME_EXCHANGE moves out (exchange finds a missing name itself).
func (n *node) checkStickyExchange(ctx context.Context, name string) syscall.Errno {
	if !n.u.squashing() {
		return 0
	}
	obj, err := n.u.resolve(n.getChain(), n.rel(), name)
	if err != nil {
		return 0
	}
	return n.checkStickyRemoval(ctx, &obj.st)
}

// checkSquashedLink refuses, on a squashed mount, a hard link to n that
// the kernel's protected_hardlinks rule would refuse with the real owner:
// the caller must own the file, or it must be a plain file (no setuid, no
// executable setgid) the caller can read and write.
func (n *node) checkSquashedLink(ctx context.Context) syscall.Errno {
	c, eno := n.u.squashedCaller(ctx, syscall.EPERM)
	if c == nil {
		return eno
	}
	if c.Uid == 0 {
		return 0
	}
	st, eno := n.layerStat(nil)
	if eno != 0 {
		return eno
	}
	if ru, _ := n.u.realOwner(&st); c.Uid == ru {
		return 0
	}
	plain := st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Mode&syscall.S_ISUID == 0 &&
		st.Mode&(syscall.S_ISGID|syscall.S_IXGRP) != syscall.S_ISGID|syscall.S_IXGRP
	if !plain || !n.u.realAccess(c, &st, unix.R_OK|unix.W_OK) {
		return syscall.EPERM
	}
	return 0
}

// layerStat stats the object as it is in its top layer, or through the
// open handle fh when it has no name left (unlinked while open).
func (n *node) layerStat(fh fs.FileHandle) (syscall.Stat_t, syscall.Errno) {
	var st syscall.Stat_t
	err := n.u.lstat(n.getChain()[0], n.rel(), &st)
	if err != nil {
		if h := asHandle(fh); h != nil {
			err = syscall.Fstat(h.fd, &st)
		}
	}
	return st, errno(err)
}

// checkSquashedOpen refuses, on a squashed mount, an open the real owner
// and mode would not allow the caller: the daemon's own check behind the
// kernel's on the reduced mode.
func (n *node) checkSquashedOpen(ctx context.Context, flags uint32) syscall.Errno {
	c, eno := n.u.squashedCaller(ctx, syscall.EACCES)
	if c == nil {
		return eno
	}
	if c.Uid == 0 {
		return 0
	}
	var mask uint32
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		mask = unix.R_OK
	case syscall.O_WRONLY:
		mask = unix.W_OK
	default:
		mask = unix.R_OK | unix.W_OK
	}
	if flags&syscall.O_TRUNC != 0 {
		mask |= unix.W_OK
	}
	st, eno := n.layerStat(nil)
	if eno != 0 {
		return eno
	}
	if !n.u.realAccess(c, &st, mask) {
		return syscall.EACCES
	}
	return 0
}

// checkSquashedXattr refuses, on a squashed mount, changes to system.*
// xattrs (POSIX ACLs) by anyone but the real owner. user.* changes need
// write access, which the kernel checks against the reduced mode; trusted.*
// and security.* need capabilities it checks itself.
func (u *unionFS) checkSquashedXattr(c *fuse.Caller, attr string, st *syscall.Stat_t) syscall.Errno {
	if !u.squashing() || c.Uid == 0 || !strings.HasPrefix(attr, "system.") {
		return 0
	}
	if ru, _ := u.realOwner(st); c.Uid != ru {
		return syscall.EPERM
	}
	return 0
}

// realAccess is the kernel's permission check of caller c against the
// object's real owner and mode (mask: unix.R_OK, W_OK, X_OK bits).
func (u *unionFS) realAccess(c *fuse.Caller, st *syscall.Stat_t, mask uint32) bool {
	ru, rg := u.realOwner(st)
	perm := st.Mode & 0o7
	switch {
	case c.Uid == ru:
		perm = (st.Mode >> 6) & 0o7
	case inGroup(c, rg):
		perm = (st.Mode >> 3) & 0o7
	}
	return perm&mask == mask
}

// checkSquashedXattrChange applies checkSquashedXattr to a change of attr
// on n by the caller of ctx.
func (n *node) checkSquashedXattrChange(ctx context.Context, attr string) syscall.Errno {
	c, eno := n.u.squashedCaller(ctx, syscall.EPERM)
	if c == nil {
		return eno
	}
	st, eno := n.layerStat(nil)
	if eno != 0 {
		return eno
	}
	return n.u.checkSquashedXattr(c, attr, &st)
}
