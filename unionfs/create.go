package unionfs

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/whiteout"
)

// newEntry is a name about to be created in a directory of the upper.
type newEntry struct {
	dirRel   string
	name     string
	dir      int    // the upper directory, open (close)
	release  func() // releases dir
	path     string // real path in the upper, for messages
	whiteout bool   // the upper holds .wh.name, hiding a lower name
	perm     uint32 // permission bits to set once the owner is set; symlinks: none
	hasPerm  bool
	parentSt syscall.Stat_t
}

// prepareCreate checks that name may be created in n and copies n up. The
// caller holds u.mu for writing.
func (n *node) prepareCreate(name string) (*newEntry, syscall.Errno) {
	if e := validName(name); e != 0 {
		return nil, e
	}
	if !n.u.rw {
		return nil, syscall.EROFS
	}
	if err := n.copyUp(-1); err != nil {
		return nil, errno(err)
	}
	e := &newEntry{dirRel: n.rel(), name: name, dir: -1}
	e.path = n.u.upperPath(joinRel(e.dirRel, name))
	dir, release, err := n.u.dirFd(upperLayer, e.dirRel)
	if err != nil {
		return nil, errno(err)
	}
	e.dir, e.release = dir, release
	if eno := n.checkCreate(e); eno != 0 {
		e.close()
		return nil, eno
	}
	return e, 0
}

// checkCreate fills in e from its open upper directory, clearing a 0/0
// whiteout that stands at the name.
func (n *node) checkCreate(e *newEntry) syscall.Errno {
	if err := syscall.Fstat(e.dir, &e.parentSt); err != nil {
		return errno(err)
	}
	wh, err := upperWhiteoutAt(e.dir, e.name)
	if err != nil {
		return errno(err)
	}
	e.whiteout = wh
	if err := n.u.clearOverlayWhiteoutAt(e.dir, e.name, e.path); err != nil {
		return errno(err)
	}
	if !wh {
		// The kernel only creates names it saw missing, but its cache may
		// be stale after a change made directly in a layer.
		if _, err := n.u.resolve(n.getChain(), e.dirRel, e.name); err == nil {
			return syscall.EEXIST
		} else if !errors.Is(err, errNotFound) {
			return errno(err)
		}
	}
	return 0
}

// close releases the entry's directory.
func (e *newEntry) close() {
	if e != nil && e.dir >= 0 {
		e.release()
		e.dir = -1
	}
}

// finish gives a created object its owner and then its mode (chown clears
// setuid and setgid bits, so the mode comes last), drops a whiteout it
// replaces and returns its inode.
func (n *node) finish(ctx context.Context, e *newEntry, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	err := n.u.setOwner(ctx, e.dir, e.name, &e.parentSt)
	if err == nil && e.hasPerm {
		err = fchmodAt(e.dir, e.name, e.perm)
	}
	if err != nil {
		removeNew(e.dir, e.name)
		return nil, errno(err)
	}
	st, eno := n.publish(e)
	if eno != 0 {
		return nil, eno
	}
	f := &found{chain: []int{upperLayer}, st: st}
	return n.childInode(ctx, e.name, f, &out.Attr), 0
}

// publish drops the whiteout a new upper entry replaces (only now that the
// entry exists, so the lower name never shows in between) and stats it.
func (n *node) publish(e *newEntry) (syscall.Stat_t, syscall.Errno) {
	var st syscall.Stat_t
	if e.whiteout {
		if err := n.u.removeWhiteout(e.dirRel, e.name); err != nil {
			return st, errno(err)
		}
	}
	if err := lstatAt(e.dir, e.name, &st); err != nil {
		return st, errno(err)
	}
	// A new object is no copy, even on a recycled inode number whose
	// removal we did not see (a change made directly in the upper).
	if st.Nlink == 1 || st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		delete(n.u.copiedIno, st.Ino)
	}
	return st, 0
}

// removeNew undoes the creation of name in dir after a later step failed.
func removeNew(dir int, name string) {
	if unix.Unlinkat(dir, name, 0) == syscall.EISDIR {
		unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
	}
}

// setOwner gives a new upper object the caller's ids (mapped to stored
// ids), as the kernel would for a file created directly; a setgid parent
// passes on its (stored) group.
func (u *unionFS) setOwner(ctx context.Context, dir int, name string, parent *syscall.Stat_t) error {
	if !runAsRoot {
		return nil
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return nil
	}
	uid, gid, eno := u.hostOwner(int(caller.Uid), int(caller.Gid))
	if eno != 0 {
		return eno
	}
	if parent.Mode&syscall.S_ISGID != 0 {
		gid = int(parent.Gid)
	}
	return unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// runAsRoot: the daemon runs as root, so new objects get the caller's ids.
// A process's effective uid does not change under us; asking once saves a
// system call per create.
var runAsRoot = os.Geteuid() == 0

// modeFor is the permission bits a new object gets: what the kernel asked
// for (umask already applied), plus setgid inherited by directories.
func modeFor(mode uint32, isDir bool, parent *syscall.Stat_t) uint32 {
	m := mode & 07777
	if isDir && parent.Mode&syscall.S_ISGID != 0 {
		m |= syscall.S_ISGID
	}
	return m
}

// Create makes and opens a new file in the upper.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (ino *fs.Inode, fh fs.FileHandle, fuseFlags uint32, eno syscall.Errno) {
	tr := n.u.lockOp("create", joinRel(n.rel(), name))
	defer func() { n.u.unlockOp(tr, eno) }()
	e, eno := n.prepareCreate(name)
	if eno != 0 {
		return nil, nil, 0, eno
	}
	defer e.close()
	oflags := int(flags)&^(syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOCTTY) | syscall.O_CREAT | syscall.O_EXCL | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	e.perm, e.hasPerm = modeFor(mode, false, &e.parentSt), true
	fd, err := unix.Openat(e.dir, e.name, oflags, e.perm)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	ino, eno = n.finish(ctx, e, out)
	if eno != 0 {
		syscall.Close(fd)
		return nil, nil, 0, eno
	}
	tr.layer(upperLayer)
	cn := toNode(ino.Operations())
	cn.mu.Lock()
	fh, fuseFlags = cn.newHandleLocked(fd, true)
	cn.mu.Unlock()
	return ino, fh, fuseFlags, 0
}

// Mkdir makes a directory in the upper. Over a whiteout the new directory is
// opaque, so the deleted lower directory's entries stay hidden; it is built
// with its marker in the workdir and renamed into place.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (ino *fs.Inode, eno syscall.Errno) {
	tr := n.u.lockOp("mkdir", joinRel(n.rel(), name))
	defer func() { n.u.unlockOp(tr, eno) }()
	e, eno := n.prepareCreate(name)
	if eno != 0 {
		return nil, eno
	}
	defer e.close()
	perm := modeFor(mode, true, &e.parentSt)
	e.perm, e.hasPerm = perm, true
	var err error
	if e.whiteout {
		err = n.u.cow.Stage(cow.At{Dir: e.dir, Name: e.name}, false, func(tmp cow.At) error {
			if err := unix.Mkdirat(tmp.Dir, tmp.Name, perm); err != nil {
				return err
			}
			return n.u.markOpaque(tmp.Dir, tmp.Name)
		})
		n.u.note("opaque %s", n.u.opaqueMarkName(e.path))
	} else {
		err = unix.Mkdirat(e.dir, e.name, perm)
	}
	if err != nil {
		return nil, errno(err)
	}
	return n.finish(ctx, e, out)
}

// Mknod makes a device node, fifo or socket in the upper. A 0/0 character
// device would read back as an overlay whiteout, so it is refused.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (ino *fs.Inode, eno syscall.Errno) {
	if whiteout.IsOverlayWhiteoutMode(mode, uint64(dev)) {
		return nil, syscall.EPERM
	}
	tr := n.u.lockOp("mknod", joinRel(n.rel(), name))
	defer func() { n.u.unlockOp(tr, eno) }()
	e, eno := n.prepareCreate(name)
	if eno != 0 {
		return nil, eno
	}
	defer e.close()
	if err := unix.Mknodat(e.dir, e.name, mode, int(dev)); err != nil {
		return nil, errno(err)
	}
	e.perm, e.hasPerm = modeFor(mode, false, &e.parentSt), true
	return n.finish(ctx, e, out)
}

// Symlink makes a symbolic link in the upper.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (ino *fs.Inode, eno syscall.Errno) {
	tr := n.u.lockOp("symlink", joinRel(n.rel(), name))
	tr.arg("-> %s", target)
	defer func() { n.u.unlockOp(tr, eno) }()
	e, eno := n.prepareCreate(name)
	if eno != 0 {
		return nil, eno
	}
	defer e.close()
	if err := unix.Symlinkat(target, e.dir, e.name); err != nil {
		return nil, errno(err)
	}
	return n.finish(ctx, e, out)
}

// Link makes a hard link in the upper, copying the target up first.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (ino *fs.Inode, eno syscall.Errno) {
	tr := n.u.lockOp("link", joinRel(n.rel(), name))
	defer func() { n.u.unlockOp(tr, eno) }()
	tn := toNode(target)
	if tn == nil {
		return nil, syscall.EXDEV
	}
	if e := validName(name); e != 0 {
		return nil, e
	}
	if !n.u.rw {
		return nil, syscall.EROFS
	}
	if eno := tn.checkSquashedLink(ctx); eno != 0 {
		return nil, eno
	}
	if err := tn.copyUp(-1); err != nil {
		return nil, errno(err)
	}
	e, eno := n.prepareCreate(name)
	if eno != 0 {
		return nil, eno
	}
	defer e.close()
	tr.arg("to /%s", tn.rel())
	if err := n.u.linkUpper(tn, e.dir, e.name); err != nil {
		return nil, errno(err)
	}
	st, eno := n.publish(e)
	if eno != 0 {
		return nil, eno
	}
	n.u.fillAttr(&out.Attr, &st, []int{upperLayer}, tn.StableAttr().Ino)
	return tn.EmbeddedInode(), 0
}

// linkUpper makes name in dir a new name of tn's upper file. A file with no
// name (O_TMPFILE, or unlinked while open) is reached through an open handle.
func (u *unionFS) linkUpper(tn *node, dir int, name string) error {
	if !tn.orphaned() {
		return u.at(upperLayer, tn.rel(), func(sdir int, sname string) error {
			return unix.Linkat(sdir, sname, dir, name, 0)
		})
	}
	h := tn.anyUpperHandle()
	if h == nil {
		return syscall.ENOENT
	}
	return unix.Linkat(unix.AT_FDCWD, fdPath(h.fd), dir, name, unix.AT_SYMLINK_FOLLOW)
}
