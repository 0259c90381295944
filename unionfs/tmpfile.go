package unionfs

import (
	"context"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var _ fs.NodeTmpfiler = (*node)(nil)

// Tmpfile makes an unnamed file (O_TMPFILE) in the upper copy of the
// directory; linkat through /proc/self/fd can give it a name later (Link).
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (ino *fs.Inode, fh fs.FileHandle, fuseFlags uint32, eno syscall.Errno) {
	if !n.u.rw {
		return nil, nil, 0, syscall.EROFS
	}
	tr := n.u.lockOp("tmpfile", n.rel())
	defer func() { n.u.unlockOp(tr, eno) }()
	if err := n.copyUp(-1); err != nil {
		return nil, nil, 0, errno(err)
	}
	dir, err := n.u.openDir(upperLayer, n.rel())
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	defer unix.Close(dir)
	var parent syscall.Stat_t
	if err := syscall.Fstat(dir, &parent); err != nil {
		return nil, nil, 0, errno(err)
	}
	perm := modeFor(mode, false, &parent)
	fd, err := unix.Openat(dir, ".", int(flags)&^syscall.O_CREAT|unix.O_TMPFILE|syscall.O_CLOEXEC, perm)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	if eno := n.u.ownNewFd(ctx, fd, &parent, perm); eno != 0 {
		syscall.Close(fd)
		return nil, nil, 0, eno
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, nil, 0, errno(err)
	}
	delete(n.u.copiedIno, st.Ino)
	id := n.u.identity(upperLayer, &st, "")
	n.u.fillAttr(&out.Attr, &st, []int{upperLayer}, id.Ino)
	child := &node{u: n.u, at: &n.u.singlePlace[upperLayer]}
	ino = n.NewInode(ctx, child, id)
	child.mu.Lock()
	fh, fuseFlags = child.newHandleLocked(fd, true)
	child.mu.Unlock()
	return ino, fh, fuseFlags, 0
}

// ownNewFd gives a new unnamed file the caller's ids, then its mode (chown
// clears setuid/setgid), as finish does for named ones.
func (u *unionFS) ownNewFd(ctx context.Context, fd int, parent *syscall.Stat_t, perm uint32) syscall.Errno {
	if os.Geteuid() == 0 {
		if caller, ok := fuse.FromContext(ctx); ok {
			uid, gid, eno := u.hostOwner(int(caller.Uid), int(caller.Gid))
			if eno != 0 {
				return eno
			}
			if parent.Mode&syscall.S_ISGID != 0 {
				gid = int(parent.Gid)
			}
			if err := syscall.Fchown(fd, uid, gid); err != nil {
				return errno(err)
			}
		}
	}
	return errno(syscall.Fchmod(fd, perm))
}
