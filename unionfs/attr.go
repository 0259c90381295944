package unionfs

import (
	"context"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// Setattr changes mode, owner, size or times; the object is copied up
// first. A truncation copies only the bytes that survive it.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	const changes = fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_GID | fuse.FATTR_SIZE |
		fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_KILL_SUIDGID
	if empty := isEmptySetattr(in); empty || onlyKill(in) {
		kill, eno := n.killRequest(in, empty)
		if eno != 0 {
			return eno
		}
		if !kill {
			return n.setattrReply(ctx, fh, out)
		}
		in.Valid |= fuse.FATTR_KILL_SUIDGID
	} else if in.Valid&changes == 0 {
		return n.setattrReply(ctx, fh, out)
	}
	if n.u.squashing() {
		st, eno := n.layerStat(fh)
		if eno == 0 {
			eno = n.u.checkSquashedSetattr(in, &st)
		}
		if eno != 0 {
			return eno
		}
	}
	if n.isDetached() {
		return syscall.ESTALE // the name has a new node (lowerpt.go)
	}
	if n.orphaned() {
		return n.setattrOrphan(ctx, fh, in, out)
	}
	tr := n.u.trace("setattr", n.rel())
	eno := n.copyUpForSetattr(in, tr)
	if eno == 0 {
		eno = n.applyUpper(fh, in)
	}
	tr.layer(upperLayer)
	tr.done(eno)
	if eno != 0 {
		return eno
	}
	return n.setattrReply(ctx, fh, out)
}

// setattrReply fills a SETATTR reply with the new attributes and their
// cache time. go-fuse sets the mount's attribute timeout on GETATTR
// replies only; a SETATTR reply without one (0) makes the kernel ask again
// at the next stat, or permission check under default_permissions.
func (n *node) setattrReply(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if eno := n.Getattr(ctx, fh, out); eno != 0 {
		return eno
	}
	if out.Timeout() == 0 {
		out.SetTimeout(n.u.watch.long.attr)
	}
	return 0
}

// isEmptySetattr reports a SETATTR that changes nothing. With
// FUSE_HANDLE_KILLPRIV_V2 the kernel sends one when it wants privileges
// dropped but strips the request to do so: chown(f, -1, -1), which clears
// setuid (and setgid with group-exec) even for root, and a passthrough write
// by an unprivileged caller to a file that became setuid after it was
// opened. utimensat with both times UTIME_OMIT sends one too; for it
// clearing the bits is wrong, but it is rare and errs on the safe side.
func isEmptySetattr(in *fuse.SetAttrIn) bool {
	return in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0
}

// killRequest decides a SETATTR that only asks to clear setuid/setgid:
// one flagged FATTR_KILL_SUIDGID (what every write by an unprivileged
// caller sends, rawFS), or an empty one (isEmptySetattr). It clears the
// bits, does nothing (none to clear, the common case: one lstat and no
// lock), or refuses.
//
// The kernel sends an empty one for chown(f, -1, -1), where clearing the
// bits is a mode change only the owner may make: it checks that (EPERM for
// another user) before it strips the request it sends us, so the check is
// made here. It also sends one, forced, before a write by another user: for
// a page-cached handle the WRITE that follows carries the kill flag, so the
// SETATTR may do nothing; for a passthrough handle no WRITE follows, so it
// must clear the bits. The two are told apart only by the handles open on
// the file; a chown(f, -1, -1) by another user while the file is open on
// the upper therefore succeeds (and, with a passthrough handle open, clears
// the bits) where overlay says EPERM.
func (n *node) killRequest(in *fuse.SetAttrIn, empty bool) (bool, syscall.Errno) {
	var st unix.Stat_t
	n.u.mu.RLock()
	err := n.u.lstat(n.getChain()[0], n.rel(), (*syscall.Stat_t)(unsafe.Pointer(&st)))
	n.u.mu.RUnlock()
	if err != nil {
		return true, 0 // let the full path find out
	}
	if killBits(&st, &in.Caller) == 0 {
		return false, 0
	}
	// in.Uid is SETATTR's new owner; the caller is in.Caller.
	if !empty || in.Caller.Uid == 0 || in.Caller.Uid == st.Uid {
		return true, 0
	}
	passthrough, open := n.upperHandles()
	switch {
	case passthrough:
		return true, 0
	case open:
		return false, 0
	}
	return false, syscall.EPERM
}

// upperHandles reports whether handles on the node's upper file are open,
// and whether one of them is passed through.
func (n *node) upperHandles() (passthrough, open bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.passthroughOpen > 0, len(n.upperOpen) > 0
}

// onlyKill reports a SETATTR flagged FATTR_KILL_SUIDGID and nothing else.
func onlyKill(in *fuse.SetAttrIn) bool {
	return in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == fuse.FATTR_KILL_SUIDGID
}

// setattrOrphan serves fchmod, fchown, ftruncate and futimens on a file
// unlinked (or renamed over) while open: only an open descriptor on its
// upper copy still reaches it.
func (n *node) setattrOrphan(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	h := asHandle(fh)
	if h == nil || !h.upper {
		h = n.anyUpperHandle()
	}
	if h == nil {
		return syscall.ENOENT
	}
	if eno := n.u.applySetattr(h.fd, h, in); eno != 0 {
		return eno
	}
	return n.Getattr(ctx, h, out)
}

// anyUpperHandle returns an open handle on the node's upper file, or nil.
func (n *node) anyUpperHandle() *handle {
	n.mu.Lock()
	defer n.mu.Unlock()
	for h := range n.upperOpen {
		return h
	}
	return nil
}

func (n *node) copyUpForSetattr(in *fuse.SetAttrIn, tr *opTrace) syscall.Errno {
	if !n.u.rw {
		return syscall.EROFS
	}
	n.u.lockWrite()
	defer n.u.mu.Unlock()
	var err error
	if sz, ok := in.GetSize(); ok {
		err = n.copyUp(int64(sz))
	} else {
		err = n.copyUpMeta()
	}
	tr.takeNotes()
	return errno(err)
}

// applyUpper applies a SETATTR to the node's upper copy. The object is
// opened while u.mu keeps renames out (its path is current); the changes
// then go to the object, wherever it moves.
func (n *node) applyUpper(fh fs.FileHandle, in *fuse.SetAttrIn) syscall.Errno {
	if in.Valid&(fuse.FATTR_SIZE|fuse.FATTR_KILL_SUIDGID) == 0 {
		if done, eno := n.applyUpperAt(in); done {
			return eno
		}
	}
	n.u.mu.RLock()
	fd, err := n.u.openObj(upperLayer, n.rel())
	n.u.mu.RUnlock()
	if err != nil {
		return errno(err)
	}
	defer unix.Close(fd)
	return n.u.applySetattr(fd, fh, in)
}

// applyUpperAt applies a change of mode, owner or times (what chmod, chown,
// utimes and tar's restore of each file send) with *at calls on the name in
// its cached parent directory, none following a symlink, while u.mu keeps
// renames out: no descriptor of the object is opened. It reports false,
// having changed nothing, where the kernel has no fchmodat2 (the caller then
// goes through a descriptor).
func (n *node) applyUpperAt(in *fuse.SetAttrIn) (bool, syscall.Errno) {
	n.u.mu.RLock()
	defer n.u.mu.RUnlock()
	done := true
	err := n.u.at(upperLayer, n.rel(), func(dir int, name string) error {
		if m, ok := in.GetMode(); ok {
			err := fchmodatNoFollow(dir, name, m)
			if err == unix.ENOSYS {
				done = false
				return nil
			}
			if err != nil {
				return err
			}
		}
		if su, sg, ok := setattrOwner(in); ok {
			su, sg, eno := n.u.hostOwner(su, sg)
			if eno != 0 {
				return eno
			}
			if err := unix.Fchownat(dir, name, su, sg, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
		if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 {
			return unix.UtimesNanoAt(dir, name, setattrTimes(in), unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
	return done, errno(err)
}

// fchmodatNoFollow changes the mode of name in dir, never following a
// symlink: fchmodat2 (Linux 6.6); ENOSYS before.
func fchmodatNoFollow(dir int, name string, mode uint32) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(mode), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// setattrOwner is SETATTR's new owner (-1 for an id left alone), if it
// changes one.
func setattrOwner(in *fuse.SetAttrIn) (int, int, bool) {
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	su, sg := -1, -1
	if uok {
		su = int(uid)
	}
	if gok {
		sg = int(gid)
	}
	return su, sg, uok || gok
}

// setattrTimes is the utimensat argument of SETATTR's times.
func setattrTimes(in *fuse.SetAttrIn) []unix.Timespec {
	return []unix.Timespec{setattrTime(in.Valid, fuse.FATTR_ATIME, fuse.FATTR_ATIME_NOW, in.Atime, in.Atimensec),
		setattrTime(in.Valid, fuse.FATTR_MTIME, fuse.FATTR_MTIME_NOW, in.Mtime, in.Mtimensec)}
}

// applySetattr applies the requested changes to the upper object open as fd
// (an O_PATH descriptor, or the descriptor of an open handle).
// Truncation comes before times so an explicit mtime survives it.
func (u *unionFS) applySetattr(fd int, fh fs.FileHandle, in *fuse.SetAttrIn) syscall.Errno {
	if m, ok := in.GetMode(); ok {
		if err := fchmodFd(fd, m); err != nil {
			return errno(err)
		}
	}
	if su, sg, ok := setattrOwner(in); ok {
		su, sg, eno := u.hostOwner(su, sg)
		if eno != 0 {
			return eno
		}
		if err := fchownFd(fd, su, sg); err != nil {
			return errno(err)
		}
	}
	if sz, ok := in.GetSize(); ok {
		if eno := truncate(fd, fh, int64(sz)); eno != 0 {
			return eno
		}
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		if eno := killSuidgid(fd, &in.Caller); eno != 0 {
			return eno
		}
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 {
		if err := futimesFd(fd, setattrTimes(in)); err != nil {
			return errno(err)
		}
	}
	return 0
}

// truncate resizes through the open handle when it is on the upper file,
// else through a descriptor opened for writing on the object fd (its /proc
// entry names the object we opened).
func truncate(fd int, fh fs.FileHandle, size int64) syscall.Errno {
	if h := asHandle(fh); h != nil && h.upper {
		return errno(syscall.Ftruncate(h.fd, size))
	}
	wfd, err := unix.Open(fdPath(fd), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return errno(err)
	}
	defer unix.Close(wfd)
	return errno(syscall.Ftruncate(wfd, size))
}

// setattrTime builds one utimensat timespec from SETATTR's valid bits.
func setattrTime(valid, bit, nowBit uint32, sec uint64, nsec uint32) unix.Timespec {
	switch {
	case valid&bit == 0:
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	case valid&nowBit != 0:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	}
	return unix.Timespec{Sec: int64(sec), Nsec: int64(nsec)}
}

// Setxattr sets an xattr on the upper copy. Internal names are refused so a
// user cannot forge whiteouts or opaque markers.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if whiteout.IsInternalXattr(attr) {
		return syscall.EPERM
	}
	if eno := n.checkSquashedXattrChange(ctx, attr); eno != 0 {
		return eno
	}
	return n.xattrChange("setxattr", attr, func(fd int) error { return fdSetxattr(fd, attr, data, int(flags)) })
}

// Removexattr removes an xattr from the upper copy.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if whiteout.IsInternalXattr(attr) {
		return syscall.ENODATA
	}
	if eno := n.checkSquashedXattrChange(ctx, attr); eno != 0 {
		return eno
	}
	// Removing an absent xattr must fail without a copy-up.
	err := n.onTop(func(fd int) error {
		_, err := fdGetxattr(fd, attr, nil)
		return err
	})
	if err != nil {
		return errno(err)
	}
	return n.xattrChange("removexattr", attr, func(fd int) error { return fdRemovexattr(fd, attr) })
}

func (n *node) xattrChange(op, attr string, change func(fd int) error) (eno syscall.Errno) {
	if !n.u.rw {
		return syscall.EROFS
	}
	if n.isDetached() {
		return syscall.ESTALE // the name has a new node (lowerpt.go)
	}
	tr := n.u.lockOp(op, n.rel())
	tr.arg("%s", attr)
	defer func() { n.u.unlockOp(tr, eno) }()
	if err := n.copyUpMeta(); err != nil {
		return errno(err)
	}
	tr.layer(upperLayer)
	return errno(n.u.onObj(upperLayer, n.rel(), change))
}
