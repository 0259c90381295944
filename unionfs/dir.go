package unionfs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirHandle is an open merged directory. Its listing is made once per
// opendir (or rewind), and the kernel may keep it in its page cache
// (FOPEN_CACHE_DIR): a second listing of an unchanged directory then costs
// no request at all. The kernel drops that cache itself when the directory
// changes through the mount, or when it sees the directory's mtime change;
// a merged directory reports the newest mtime of its layers
// (mergedDirTimes), so a change made directly in any layer shows too.
type dirHandle struct {
	node *node
	// st is the directory's stat at open time, for fstat after a removal.
	st   *syscall.Stat_t
	mu   sync.Mutex
	ents []fuse.DirEntry
	next int
	read bool
	// snap describes ents for lookups (listed.go).
	snap *dirSnapshot
}

var (
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
	_ fs.FileReleasedirer   = (*dirHandle)(nil)
)

// OpendirHandle opens the merged directory for reading.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	d := &dirHandle{node: n}
	var st syscall.Stat_t
	n.u.mu.RLock()
	err := n.u.lstat(n.getChain()[0], n.rel(), &st)
	n.u.mu.RUnlock()
	if err == nil {
		d.st = &st
	}
	return d, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// Readdirent returns the next entry, listing the directory on first use.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.read {
		ents, snap, eno := d.node.listing()
		if eno != 0 {
			return nil, eno
		}
		// next stays where Seekdir put it: the kernel resumes at an
		// offset on a handle that has not listed yet when it served the
		// first entries from its cached listing and then lost the cache.
		d.ents, d.read = ents, true
		d.setSnapshot(snap)
	}
	if d.next >= len(d.ents) {
		return nil, 0
	}
	e := &d.ents[d.next]
	d.next++
	e.Off = uint64(d.next)
	return e, 0
}

// Seekdir moves to the entry after offset off; 0 lists the directory anew.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.read = false
	}
	d.next = int(off)
	return 0
}

// setSnapshot makes snap the one lookups in the directory use, in place of
// the handle's previous one.
func (d *dirHandle) setSnapshot(snap *dirSnapshot) {
	if d.snap != nil {
		d.node.u.listed.drop(d.node, d.snap)
	}
	d.snap = snap
	d.node.u.listed.set(d.node, snap)
}

// Releasedir drops the handle's snapshot.
func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snap != nil {
		d.node.u.listed.drop(d.node, d.snap)
		d.snap = nil
	}
}

// listing is the merged directory with "." and "..", and the snapshot of it
// for lookups.
func (n *node) listing() ([]fuse.DirEntry, *dirSnapshot, syscall.Errno) {
	n.u.mu.RLock()
	ents, err := n.u.readMerged(n.getChain(), n.rel())
	gen := n.u.gen.Load()
	n.u.mu.RUnlock()
	if err != nil {
		return nil, nil, errno(err)
	}
	list := make([]fuse.DirEntry, 0, len(ents)+2)
	self := n.StableAttr().Ino
	parentIno := self
	if _, p := n.Parent(); p != nil {
		parentIno = p.StableAttr().Ino
	}
	list = append(list, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: self},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parentIno})
	for _, e := range ents {
		list = append(list, fuse.DirEntry{Name: e.name, Ino: e.ino, Mode: uint32(e.dtype) << 12})
	}
	return list, newSnapshot(gen, ents), 0
}

// mergedDirTimes gives a merged directory the newest mtime and ctime of its
// layers, so that a change in any layer is a change of the directory.
func (u *unionFS) mergedDirTimes(st *syscall.Stat_t, chain []int, rel string) {
	for _, li := range chain[1:] {
		var l syscall.Stat_t
		if u.lstat(li, rel, &l) != nil {
			continue
		}
		if syscall.TimespecToNsec(l.Mtim) > syscall.TimespecToNsec(st.Mtim) {
			st.Mtim = l.Mtim
		}
		if syscall.TimespecToNsec(l.Ctim) > syscall.TimespecToNsec(st.Ctim) {
			st.Ctim = l.Ctim
		}
	}
}
