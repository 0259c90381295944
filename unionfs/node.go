package unionfs

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/xattr"
	"github.com/unionfsd/unionfsd/whiteout"
)

// node is one file or directory of the merged tree. It knows which layers
// hold it; its path comes from the go-fuse tree, so renames need no fix-up
// of descendants' paths.
type node struct {
	fs.Inode
	u *unionFS

	// mu guards at and the open counters.
	mu sync.Mutex
	// at is where the node lives in the layers (never nil).
	at *place
	// Open handles by I/O mode: passthrough (the kernel does the I/O on the
	// upper file itself) or cached (through us). See newHandleLocked.
	// int32 keeps node in a smaller size class: the kernel can hold one
	// node per entry of a large tree.
	passthroughOpen, cachedOpen int32
	// upperOpen are the open handles on the upper file: after an unlink they
	// are the only way to it (fchmod of an unlinked file sends no handle).
	upperOpen map[*handle]struct{}
	// lower is set once the node had lower passthrough handles (lowerpt.go).
	lower *lowerState
	// unwatched: changes made directly in the layers below this directory
	// (or in this file's directory) may go unreported, so replies about it
	// carry the short cache timeouts (watch.go).
	unwatched atomic.Bool
	// wroteAt is when a handle that could write the upper file was last
	// closed through the mount (unix ns): the watch then ignores the
	// close event the kernel's own writes cause (watch.go).
	// In units of wroteTick since the watch started; under mu. int32 with
	// unwatched keeps node in the 176-byte size class.
	wroteAt int32
}

// place is where a node lives in the layers. A place is never modified:
// a node that moves gets another one, so nodes can share one. Most nodes are
// non-directories or unmerged directories of a single layer, which share
// u.singlePlace; a node of its own place would cost 40 bytes more.
type place struct {
	// chain lists the layers holding the object, topmost first: one layer
	// for a non-directory, the merge chain for a directory.
	chain []int
	// data is set while the node is a metadata-only copy in the upper: the
	// lower file that still holds its data.
	data string
}

// placeOf is the place for chain and data, shared when it can be.
func (u *unionFS) placeOf(chain []int, data string) *place {
	if len(chain) == 1 && data == "" {
		return &u.singlePlace[chain[0]]
	}
	return &place{chain: chain, data: data}
}

var (
	_ fs.NodeLookuper      = (*node)(nil)
	_ fs.NodeGetattrer     = (*node)(nil)
	_ fs.NodeReadlinker    = (*node)(nil)
	_ fs.NodeStatfser      = (*node)(nil)
	_ fs.NodeGetxattrer    = (*node)(nil)
	_ fs.NodeListxattrer   = (*node)(nil)
	_ fs.NodeOpener        = (*node)(nil)
	_ fs.NodeCreater       = (*node)(nil)
	_ fs.NodeMkdirer       = (*node)(nil)
	_ fs.NodeMknoder       = (*node)(nil)
	_ fs.NodeSymlinker     = (*node)(nil)
	_ fs.NodeLinker        = (*node)(nil)
	_ fs.NodeUnlinker      = (*node)(nil)
	_ fs.NodeRmdirer       = (*node)(nil)
	_ fs.NodeRenamer       = (*node)(nil)
	_ fs.NodeSetattrer     = (*node)(nil)
	_ fs.NodeSetxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
)

// orphaned reports whether the node has left the tree (unlinked, or
// replaced by a rename) while the kernel still holds it.
func (n *node) orphaned() bool {
	_, p := n.Parent()
	return p == nil && !n.IsRoot()
}

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

// fdPath names an open descriptor's file for path-based calls.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// rel is the node's path relative to the mount root ("" for the root). An
// unlinked node gets a path that exists in no layer.
func (n *node) rel() string { return n.Path(n.Root()) }

func (n *node) getChain() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.at.chain
}

func (n *node) setChain(chain []int) {
	n.mu.Lock()
	n.at = n.u.placeOf(chain, n.at.data)
	n.mu.Unlock()
}

// setState records where the node lives after a lookup.
func (n *node) setState(f *found) {
	n.mu.Lock()
	n.at = n.u.placeOf(f.chain, f.data)
	n.mu.Unlock()
}

// dataPath is the path, in the lower layers, of a metadata-only copy's
// data, or "".
func (n *node) dataPath() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.at.data
}

// onTop runs fn on an O_PATH descriptor of the node's object in the layer
// that answers for it. The object is opened while u.mu keeps renames out.
func (n *node) onTop(fn func(fd int) error) error {
	if h := n.detachedReader(); h != nil {
		// Split off its names: what its readers have open is the file.
		fd, err := unix.Open(fdPath(h.fd), unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return fn(fd)
	}
	n.u.mu.RLock()
	fd, err := n.u.openObj(n.getChain()[0], n.rel())
	n.u.mu.RUnlock()
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return fn(fd)
}

// errno turns an error from the layers into what FUSE returns.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// validName refuses names users may not create: whiteouts and markers.
func validName(name string) syscall.Errno {
	if whiteout.IsWhiteoutName(name) {
		return syscall.EINVAL
	}
	return 0
}

// fillAttr converts a layer's stat into the merged view's attributes.
func (u *unionFS) fillAttr(out *fuse.Attr, st *syscall.Stat_t, chain []int, ino uint64) {
	out.FromStat(st)
	out.Ino = ino
	u.showOwner(&out.Uid, &out.Gid)
	u.showSquashedMode(out, st)
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR && (len(chain) > 1 || u.cfg.StaticNlink) {
		// A merged dir's link count is not any one layer's; 1 tells find(1)
		// and friends "unknown", as overlay does.
		out.Nlink = 1
	}
}

// Lookup finds name in this directory across the layers.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if whiteout.IsWhiteoutName(name) {
		return nil, syscall.ENOENT
	}
	tr := n.u.trace("lookup", joinRel(n.rel(), name))
	n.u.mu.RLock()
	defer n.u.mu.RUnlock()
	rel := n.rel()
	var listed found // on the stack: most lookups of a listing end here
	f := &listed
	if !n.resolveListed(rel, name, f) {
		var err error
		if f, err = n.u.resolve(n.getChain(), rel, name); err != nil {
			tr.done(errno(err))
			n.setReplyTimeouts(out, false)
			return nil, errno(err)
		}
	}
	if f.isDir() {
		n.u.forgetDir(joinRel(rel, name))
	}
	tr.layer(f.chain[0])
	tr.done(0)
	n.setReplyTimeouts(out, true)
	return n.childInode(ctx, name, f, &out.Attr), 0
}

// childInode returns the inode for a resolved child, reusing the known one
// (and refreshing its layer chain) when the kernel already has it.
func (n *node) childInode(ctx context.Context, name string, f *found, attr *fuse.Attr) *fs.Inode {
	rel := joinRel(n.rel(), name)
	stable := n.u.identity(f.chain[0], &f.st, rel)
	if f.isDir() && len(f.chain) > 1 {
		n.u.mergedDirTimes(&f.st, f.chain, rel)
	}
	n.u.fillAttr(attr, &f.st, f.chain, stable.Ino)
	unwatched := n.unwatched.Load()
	if f.isDir() && !n.u.learnDir(rel, f.chain) {
		unwatched = true
	}
	if old := n.GetChild(name); old != nil && old.StableAttr() == stable {
		if on, ok := old.Operations().(*node); ok {
			on.setState(f)
			on.unwatched.Store(unwatched)
			return old
		}
	}
	child := &node{u: n.u, at: n.u.placeOf(f.chain, f.data)}
	child.unwatched.Store(unwatched)
	return n.NewInode(ctx, child, stable)
}

// Getattr stats the layer that answers for the node. An unlinked file that
// is still open is stated through its handle.
func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	n.u.mu.RLock()
	chain, rel := n.getChain(), n.rel()
	err := n.u.lstat(chain[0], rel, &st)
	if err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR && len(chain) > 1 {
		n.u.mergedDirTimes(&st, chain, rel)
	}
	n.u.mu.RUnlock()
	if err != nil {
		if fh == nil {
			if h := n.anyUpperHandle(); h != nil {
				fh = h
			} else if h := n.anyLowerHandle(); h != nil {
				fh = h // a node split off its lower readers
			}
		}
		if eno := statOpen(fh, &st); eno != 0 {
			return errno(err)
		}
	}
	if data := n.dataPath(); data != "" {
		st.Blocks = n.u.metacopyBlocks(data)
	}
	// inoOf needs u.mu; the node already knows its number.
	n.u.fillAttr(&out.Attr, &st, chain, n.StableAttr().Ino)
	if n.unwatched.Load() {
		out.SetTimeout(n.u.watch.short.attr)
	}
	return 0
}

// statOpen stats an open file or directory through its handle: what is left
// of an object removed while open.
func statOpen(fh fs.FileHandle, st *syscall.Stat_t) syscall.Errno {
	if h := asHandle(fh); h != nil {
		return errno(syscall.Fstat(h.fd, st))
	}
	if d, ok := fh.(*dirHandle); ok && d.st != nil {
		*st = *d.st
		st.Nlink = 0
		return 0
	}
	return syscall.ENOENT
}

// Readlink reads the link from the layer that answers for it.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	var target []byte
	err := n.onTop(func(fd int) (err error) {
		target, err = readlinkFd(fd)
		return err
	})
	return target, errno(err)
}

// Statfs reports the filesystem of the upper (or of the top layer of a
// read-only union): that is where writes would go.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(n.u.layers[0].root, &st); err != nil {
		return errno(err)
	}
	out.FromStatfsT(&st)
	return 0
}

// Getxattr reads an xattr from the answering layer; internal ones are hidden.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if whiteout.IsInternalXattr(attr) {
		return 0, syscall.ENODATA
	}
	var sz int
	if n.detachedReader() != nil {
		// Split off its names (lowerpt.go): its readers' file answers.
		err := n.onTop(func(fd int) (err error) {
			sz, err = fdGetxattr(fd, attr, dest)
			return err
		})
		return uint32(sz), errno(err)
	}
	n.u.mu.RLock()
	err := n.u.at(n.getChain()[0], n.rel(), func(dir int, name string) (err error) {
		sz, err = getxattrAt(dir, name, attr, dest)
		return err
	})
	n.u.mu.RUnlock()
	return uint32(sz), errno(err)
}

// Listxattr lists the answering layer's xattrs minus internal ones, and
// minus trusted.* ones for callers who may not see them.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var names []string
	err := n.onTop(func(fd int) (err error) {
		names, err = xattr.ListFd(fd)
		return err
	})
	if err != nil {
		return 0, errno(err)
	}
	var buf []byte
	for _, name := range hideTrusted(ctx, names) {
		if !whiteout.IsInternalXattr(name) {
			buf = append(append(buf, name...), 0)
		}
	}
	if len(dest) == 0 {
		return uint32(len(buf)), 0
	}
	if len(buf) > len(dest) {
		return uint32(len(buf)), syscall.ERANGE
	}
	return uint32(copy(dest, buf)), 0
}
