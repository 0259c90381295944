package faults

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/unionfsd/unionfsd/tests/difftest"
)

// faultFS is a FUSE loopback file system over a real directory that fails
// writes with EIO on demand, for hosts whose kernel has no device-mapper
// (dm-flakey's error_writes does the same below a block file system).
// Reads always work.
type faultFS struct {
	mnt string
	// broken fails every write to the file system: data, creates, links,
	// renames, removals, attribute and xattr changes.
	broken atomic.Bool
	// dataBudget, when not negative, is how many more bytes of file data
	// may be written before every data write fails (a disk that dies in
	// the middle of a copy); name operations keep working.
	dataBudget atomic.Int64
}

// mountFaultFS serves a faultFS over a fresh directory and returns it;
// cleanup unmounts it.
func mountFaultFS(t *testing.T) *faultFS {
	t.Helper()
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "faultfs")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ff := &faultFS{mnt: mnt}
	ff.dataBudget.Store(-1)
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		t.Fatal(err)
	}
	newNode := func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &faultNode{LoopbackNode: fs.LoopbackNode{RootData: r}, ff: ff}
	}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev), NewNode: newNode}
	root.RootNode = newNode(root, nil, "", &st)
	zero := time.Duration(0)
	srv, err := fs.Mount(mnt, root.RootNode, &fs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName: "faultfs", Name: "faultfs", DirectMount: true,
			Options: []string{"default_permissions"},
		},
	})
	if err != nil {
		t.Fatalf("mount faultfs: %v", err)
	}
	t.Cleanup(func() {
		ff.broken.Store(false)
		ff.dataBudget.Store(-1)
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount faultfs: %v", err)
			difftest.Unmount(mnt)
		}
	})
	return ff
}

// breakWrites makes every write fail with EIO until healWrites.
func (ff *faultFS) breakWrites() { ff.broken.Store(true) }

// failDataAfter lets n more bytes of file data through, then fails.
func (ff *faultFS) failDataAfter(n int64) { ff.dataBudget.Store(n) }

// heal ends every fault.
func (ff *faultFS) heal() {
	ff.broken.Store(false)
	ff.dataBudget.Store(-1)
}

// metaErr is the error of a name or attribute change.
func (ff *faultFS) metaErr() syscall.Errno {
	if ff.broken.Load() {
		return syscall.EIO
	}
	return 0
}

// dataErr charges n bytes of data against the budget.
func (ff *faultFS) dataErr(n int) syscall.Errno {
	if ff.broken.Load() {
		return syscall.EIO
	}
	for {
		b := ff.dataBudget.Load()
		if b < 0 {
			return 0
		}
		if b < int64(n) {
			ff.dataBudget.Store(0)
			return syscall.EIO
		}
		if ff.dataBudget.CompareAndSwap(b, b-int64(n)) {
			return 0
		}
	}
}

type faultNode struct {
	fs.LoopbackNode
	ff *faultFS
}

func (n *faultNode) wrap(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &faultFile{LoopbackFile: lf, ff: n.ff}
	}
	return fh
}

func (n *faultNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		if e := n.ff.metaErr(); e != 0 {
			return nil, 0, e
		}
	}
	fh, fl, e := n.LoopbackNode.Open(ctx, flags)
	return n.wrap(fh), fl, e
}

func (n *faultNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := n.ff.metaErr(); e != 0 {
		return nil, nil, 0, e
	}
	in, fh, fl, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return in, n.wrap(fh), fl, e
}

// Tmpfile is refused: go-fuse's loopback cannot link an unnamed file into
// the tree (FUSE_LINK of it fails with ENOENT), so copy-up must stage under
// a name here, as on file systems without O_TMPFILE.
func (n *faultNode) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

func (n *faultNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.ff.metaErr(); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *faultNode) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.ff.metaErr(); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

func (n *faultNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.ff.metaErr(); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *faultNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.ff.metaErr(); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *faultNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.ff.metaErr(); e != 0 {
		return e
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *faultNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.ff.metaErr(); e != 0 {
		return e
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *faultNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := n.ff.metaErr(); e != 0 {
		return e
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *faultNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.ff.metaErr(); e != 0 {
		return e
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

func (n *faultNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if e := n.ff.metaErr(); e != 0 {
		return e
	}
	return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
}

func (n *faultNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if e := n.ff.metaErr(); e != 0 {
		return e
	}
	return n.LoopbackNode.Removexattr(ctx, attr)
}

// CopyFileRange is refused, so that the kernel falls back to reads and
// writes, which go through the fault checks.
func (n *faultNode) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

// faultFile is an open file of a faultFS.
type faultFile struct {
	*fs.LoopbackFile
	ff *faultFS
}

// PassthroughFd declines passthrough: the kernel would write to the
// backing file directly, past the fault checks.
func (f *faultFile) PassthroughFd() (int, bool) { return -1, false }

func (f *faultFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if e := f.ff.dataErr(len(data)); e != 0 {
		return 0, e
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *faultFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if e := f.ff.metaErr(); e != 0 {
		return e
	}
	return f.LoopbackFile.Fsync(ctx, flags)
}

func (f *faultFile) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if e := f.ff.dataErr(0); e != 0 {
		return e
	}
	return f.LoopbackFile.Allocate(ctx, off, size, mode)
}

func (f *faultFile) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := f.ff.metaErr(); e != 0 {
		return e
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}
