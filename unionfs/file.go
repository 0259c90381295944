package unionfs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/metacopy"
)

// handle is an open file: a descriptor on the real file in the layer that
// answered at open time. A reader that opened a lower file keeps reading it
// after another writer copies the file up, as with overlay.
type handle struct {
	node  *node
	mu    sync.Mutex
	fd    int
	upper bool
	// passthrough: the kernel does this handle's I/O on fd itself.
	passthrough bool
	// stale are descriptors the handle read from before it moved to the
	// upper file (readFd).
	stale []int
}

var (
	_ fs.FileReader          = (*handle)(nil)
	_ fs.FileWriter          = (*handle)(nil)
	_ fs.FileFlusher         = (*handle)(nil)
	_ fs.FileFsyncer         = (*handle)(nil)
	_ fs.FileReleaser        = (*handle)(nil)
	_ fs.FileAllocater       = (*handle)(nil)
	_ fs.FileLseeker         = (*handle)(nil)
	_ fs.FilePassthroughFder = (*passthroughHandle)(nil)
)

// passthroughHandle is a handle whose I/O the kernel may do itself. It is a
// separate type because go-fuse reuses an inode's registered backing file
// for every handle that implements FilePassthroughFder, whatever the handle
// says: a writer must not even have the method while a reader's lower
// backing file is registered.
type passthroughHandle struct {
	*handle
}

// PassthroughFd offers fd to the kernel for passthrough I/O.
func (h passthroughHandle) PassthroughFd() (int, bool) { return h.fd, true }

// Open opens the file in the layer that answers for it. Opening for write or
// with O_TRUNC copies it up first (O_TRUNC copies no data). A file whose
// kernel inode is backed by the lower file for its readers is split off
// them instead, and the open fails with ESTALE for the VFS to retry on the
// new node (lowerpt.go).
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
	if eno := n.checkSquashedOpen(ctx, flags); eno != 0 {
		return nil, 0, eno
	}
	tr := n.u.trace("open", n.rel())
	tr.arg("%s", openMode(flags))
	if write {
		if !n.u.rw {
			return nil, 0, syscall.EROFS
		}
		if eno := n.copyUpForOpen(flags, tr); eno != 0 {
			tr.done(eno)
			return nil, 0, eno
		}
	}
	// A file copied up (by a chmod, a rename...) while lower readers
	// hold its kernel inode is split off them for any new open.
	h, fuseFlags, eno := n.openLocked(flags, tr)
	if eno == syscall.ESTALE && !n.isDetached() && !n.split() {
		// The readers closed meanwhile: the node is free for the upper.
		h, fuseFlags, eno = n.openLocked(flags, tr)
	}
	tr.done(eno)
	return h, fuseFlags, eno
}

// copyUpForOpen copies the file up for an open for write. With lower
// readers on the node it copies all data (an O_TRUNC is left to the retried
// open), splits the node and returns ESTALE.
func (n *node) copyUpForOpen(flags uint32, tr *opTrace) syscall.Errno {
	n.u.lockWrite()
	if n.isDetached() {
		n.u.mu.Unlock()
		return syscall.ESTALE
	}
	split := n.hasLowerBacking()
	size := int64(-1)
	if flags&syscall.O_TRUNC != 0 && !split {
		size = 0
	}
	err := n.copyUp(size)
	var gone []entryRef
	if err == nil && split {
		gone, err = n.splitLocked()
	}
	tr.takeNotes()
	n.u.mu.Unlock()
	if err != nil {
		return errno(err)
	}
	if split {
		invalidate(gone)
		return syscall.ESTALE
	}
	return 0
}

// openLocked opens the file for reading or writing once any copy-up is
// done. It returns ESTALE for a handle on the upper copy while lower
// passthrough handles hold the kernel inode.
func (n *node) openLocked(flags uint32, tr *opTrace) (fs.FileHandle, uint32, syscall.Errno) {
	// n.mu makes the choice of file and of I/O mode atomic against a
	// concurrent copy-up switching the node to the upper; u.mu (taken
	// first, the lock order) keeps renames out while the path is used.
	n.u.mu.RLock()
	defer n.u.mu.RUnlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lowerLocked().detached {
		return n.openDetachedLocked(flags)
	}
	upper := n.u.inUpper(n.at.chain) && n.at.data == ""
	if upper && len(n.lowerLocked().open) > 0 {
		return nil, 0, syscall.ESTALE
	}
	oflags := int(flags)&^(syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOCTTY) | syscall.O_CLOEXEC
	var fd int
	var err error
	if n.at.data != "" {
		// A metadata-only copy (never opened for write: that completes it).
		fd, _, err = metacopy.Open(n.u.lowerRoots(), n.at.data, oflags&openFlags)
	} else {
		fd, err = n.u.openInLayer(n.at.chain[0], n.rel(), oflags)
	}
	tr.layer(n.at.chain[0])
	if err != nil {
		return nil, 0, errno(err)
	}
	h, fuseFlags := n.newHandleLocked(fd, upper)
	return h, fuseFlags, 0
}

// isDetached reports whether n was split off its names.
func (n *node) isDetached() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lowerLocked().detached
}

// newHandleLocked wraps fd and picks the I/O mode; n.mu is held.
//
// The kernel keeps one backing file per inode and makes every open of an
// inode use it while any passthrough open exists; it also refuses to mix
// passthrough and cached opens, even direct-I/O ones. Upper files are
// passed through; lower files too, in a read-only union, and in a writable
// one with lower passthrough (lowerpt.go: a node with lower passthrough
// handles never gets an upper one, Open splits it first). Only while no
// cached open of the node exists. Cached opens keep the page cache
// (FOPEN_KEEP_CACHE): the kernel drops it itself when it sees the file's
// mtime or size change (auto_inval_data). A setuid or setgid upper file is
// not passed through (unless passthrough opens of it exist already, which
// the kernel would not let us mix with cached ones): the kernel sends no
// WRITE for a passthrough write, so it could not tell us to clear the bits
// (see killpriv.go).
func (n *node) newHandleLocked(fd int, upper bool) (fs.FileHandle, uint32) {
	h := &handle{node: n, fd: fd, upper: upper}
	if upper {
		n.addUpperHandleLocked(h)
	}
	flags := noFlushFlag(fd)
	switch {
	case !n.u.cfg.Passthrough || n.cachedOpen > 0:
	case upper && len(n.lowerLocked().open) > 0:
		// Never: the kernel would pass this handle through to the
		// lower file (Open splits the node first). A cached open is
		// refused by the kernel beside passthrough ones.
	case !upper && n.u.lowerPT:
		// Read-only (writes copy up first): no privileges to kill.
		h.passthrough = true
		n.lowerStateLocked().open[h] = struct{}{}
		return passthroughHandle{h}, flags
	case (upper || !n.u.rw) && (n.passthroughOpen > 0 || !fdNeedsKill(fd)):
		h.passthrough = true
		n.passthroughOpen++
		return passthroughHandle{h}, flags
	}
	n.cachedOpen++
	return h, flags | fuse.FOPEN_KEEP_CACHE
}

// noFlushFlag returns FOPEN_NOFLUSH when fd is on a filesystem whose close
// does nothing that could fail (no ->flush: the local disk filesystems and
// tmpfs). The kernel then skips the FLUSH round trip on every close, which
// would only close a duplicate of fd. On NFS, FUSE and the like, close can
// report a write error, so the FLUSH stays.
func noFlushFlag(fd int) uint32 {
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) != nil {
		return 0
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.F2FS_SUPER_MAGIC:
		return fuse.FOPEN_NOFLUSH
	}
	return 0
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(uintptr(h.readFd()), off, len(dest)), 0
}

// readFd returns the descriptor reads go to. A handle opened on a lower file
// (or a metadata-only copy's data) moves to the upper file once the file has
// been copied up, as overlay's reads do: a reader then sees what writers
// wrote. The old descriptor stays open until Release, since a read result
// may still be reading from it.
func (h *handle) readFd() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.upper || h.fd < 0 {
		return h.fd
	}
	n := h.node
	if !n.movedUp() {
		return h.fd
	}
	// The upper file is opened by path: u.mu (before n.mu, the lock
	// order) keeps renames out meanwhile.
	n.u.mu.RLock()
	defer n.u.mu.RUnlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.u.inUpper(n.at.chain) || n.at.data != "" {
		return h.fd
	}
	fd, err := n.u.openInLayer(upperLayer, n.rel(), syscall.O_RDONLY|syscall.O_CLOEXEC)
	if err != nil {
		return h.fd // unlinked or renamed away meanwhile: keep what we have
	}
	h.stale = append(h.stale, h.fd)
	h.fd, h.upper = fd, true
	n.addUpperHandleLocked(h)
	return h.fd
}

// movedUp reports whether the node's data is in a full upper copy.
func (n *node) movedUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.u.inUpper(n.at.chain) && n.at.data == ""
}

// addUpperHandleLocked records h as open on the node's upper file; n.mu is
// held.
func (n *node) addUpperHandleLocked(h *handle) {
	if n.upperOpen == nil {
		n.upperOpen = map[*handle]struct{}{}
	}
	n.upperOpen[h] = struct{}{}
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := syscall.Pwrite(h.fd, data, off)
	return uint32(n), errno(err)
}

// Flush reports close-time errors of the real file by closing a duplicate.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	fd, err := syscall.Dup(h.fd)
	if err != nil {
		return errno(err)
	}
	return errno(syscall.Close(fd))
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if flags&1 != 0 { // FUSE_FSYNC_FDATASYNC
		return errno(syscall.Fdatasync(h.fd))
	}
	return errno(syscall.Fsync(h.fd))
}

// Release closes the real file and gives back its passthrough slot.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return syscall.EBADF
	}
	if h.upper {
		h.node.noteUpperClose(h.fd)
	}
	err := syscall.Close(h.fd)
	h.fd = -1
	for _, fd := range h.stale {
		syscall.Close(fd)
	}
	h.stale = nil
	n := h.node
	n.mu.Lock()
	delete(n.upperOpen, h)
	if _, lower := n.lowerLocked().open[h]; lower {
		delete(n.lower.open, h)
	} else if h.passthrough {
		n.passthroughOpen--
	} else {
		n.cachedOpen--
	}
	n.mu.Unlock()
	return errno(err)
}

func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return errno(unix.Fallocate(h.fd, mode, int64(off), int64(size)))
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(h.fd, int64(off), int(whence))
	return uint64(n), errno(err)
}

// asHandle returns our handle behind a FUSE file handle, or nil.
func asHandle(fh fs.FileHandle) *handle {
	switch h := fh.(type) {
	case *handle:
		return h
	case passthroughHandle:
		return h.handle
	}
	return nil
}
