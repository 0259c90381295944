package unionfs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
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
}

var (
	_ fs.FileReader          = (*handle)(nil)
	_ fs.FileWriter          = (*handle)(nil)
	_ fs.FileFlusher         = (*handle)(nil)
	_ fs.FileFsyncer         = (*handle)(nil)
	_ fs.FileReleaser        = (*handle)(nil)
	_ fs.FileAllocater       = (*handle)(nil)
	_ fs.FileLseeker         = (*handle)(nil)
	_ fs.FilePassthroughFder = (*handle)(nil)
)

// Open opens the file in the layer that answers for it. Opening for write or
// with O_TRUNC copies it up first (O_TRUNC copies no data).
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
	if write {
		if !n.u.rw {
			return nil, 0, syscall.EROFS
		}
		size := int64(-1)
		if flags&syscall.O_TRUNC != 0 {
			size = 0
		}
		n.u.mu.Lock()
		err := n.copyUp(size)
		n.u.mu.Unlock()
		if err != nil {
			return nil, 0, errno(err)
		}
	}
	p, chain := n.topPath()
	oflags := int(flags)&^(syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOCTTY) | syscall.O_CLOEXEC
	fd, err := syscall.Open(p, oflags, 0)
	if err != nil {
		return nil, 0, errno(err)
	}
	return n.newHandle(fd, n.u.inUpper(chain)), 0, 0
}

// newHandle wraps fd. Passthrough is granted unless a handle on the other
// copy of the file (lower vs upper) already uses it: the kernel keeps one
// backing file per inode, and a writer must never get the lower one.
func (n *node) newHandle(fd int, upper bool) *handle {
	h := &handle{node: n, fd: fd, upper: upper}
	if !n.u.cfg.Passthrough {
		return h
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if upper && n.lowerPassthrough == 0 {
		n.upperPassthrough++
		h.passthrough = true
	} else if !upper && n.upperPassthrough == 0 && !n.u.inUpper(n.chain) {
		n.lowerPassthrough++
		h.passthrough = true
	}
	return h
}

// PassthroughFd offers fd to the kernel for passthrough I/O.
func (h *handle) PassthroughFd() (int, bool) { return h.fd, h.passthrough }

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(uintptr(h.fd), off, len(dest)), 0
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
	err := syscall.Close(h.fd)
	h.fd = -1
	if h.passthrough {
		n := h.node
		n.mu.Lock()
		if h.upper {
			n.upperPassthrough--
		} else {
			n.lowerPassthrough--
		}
		n.mu.Unlock()
	}
	return errno(err)
}

func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return errno(unix.Fallocate(h.fd, mode, int64(off), int64(size)))
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(h.fd, int64(off), int(whence))
	return uint64(n), errno(err)
}
