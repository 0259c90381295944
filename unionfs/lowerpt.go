package unionfs

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/unionfsd/unionfsd/internal/userns"
)

// Lower files through passthrough in a writable union (Config.LowerPassthrough).
//
// The kernel keeps one backing file per FUSE inode while passthrough opens
// of it exist, and every later open of that inode is passed through to the
// same backing file (fs/fuse/iomode.c; go-fuse reuses the registered one).
// A reader of a lower file therefore ties its kernel inode to the lower
// file: a writer opening the same inode after a copy-up would write the
// lower layer. So a name is never given a handle on its upper copy while its
// node has lower passthrough handles (lowerState). Instead the name is split
// off: the open that needs the upper copy copies the file up, gives the
// name a new identity (same inode number shown, new go-fuse generation,
// hence a new FUSE node id and a new kernel inode), drops the old node from
// the tree, tells the kernel to forget the name (NOTIFY_INVAL_ENTRY) and
// fails with ESTALE. The VFS retries a path open that fails with ESTALE once
// with LOOKUP_REVAL (do_filp_open in fs/namei.c); the lookup then returns
// the new node, whose opens land on the upper copy.
//
// What users see:
//   - readers that opened the file before the copy-up keep reading the lower
//     copy, as overlay did before Linux 4.19; fstat on them shows the lower
//     file; metadata changes through them (fchmod, fchown, futimens) fail
//     with ESTALE, since the name they opened is gone;
//   - every open after the copy-up, by path, sees the upper copy;
//   - an open through /proc/self/fd/N of such a reader is not retried by
//     the VFS (the magic link leads to the old inode again): for reading it
//     gets the lower copy like the reader, for writing it fails with ESTALE.
//
// Metadata-only changes (chmod, chown, utimes, xattrs, with or without
// metacopy) and truncate(2) by path need no handle and no split: the lower
// readers keep their data, the next open of the name splits it.

// splitGenBase marks the generations of split names, apart from the small
// counts of reusedIno and (with high probability) the hashes of lower hard
// links.
const splitGenBase = 1 << 62

// newSplitID returns id with a generation no other identity has; u.mu is
// held for writing.
func (u *unionFS) newSplitID(id fs.StableAttr) fs.StableAttr {
	u.splitGen++
	id.Gen = splitGenBase | u.splitGen
	return id
}

// unretired returns the identity to use for id: id itself, or the one
// that replaced it when a node with id was split off its names.
func (u *unionFS) unretired(id fs.StableAttr) fs.StableAttr {
	if r, ok := u.retiredIDs[id]; ok {
		return r
	}
	return id
}

// entryRef is one name of a node in a directory, for a kernel notification.
type entryRef struct {
	dir  *fs.Inode
	name string
}

// lowerState is what a node knows about lower passthrough; guarded by n.mu.
type lowerState struct {
	// open are the passthrough handles on a lower file: while there are
	// any, the kernel inode's backing file is that lower file, and no
	// handle on the upper copy may be opened on this node.
	open map[*handle]struct{}
	// detached: the node was split off its names (splitLocked); only the
	// readers that opened the lower file before the copy-up still use it.
	detached bool
}

// noLower is the state of a node that never had lower passthrough handles;
// read only.
var noLower lowerState

// lowerLocked returns n's lower state for reading; n.mu is held.
func (n *node) lowerLocked() *lowerState {
	if n.lower == nil {
		return &noLower
	}
	return n.lower
}

// lowerStateLocked returns n's lower state for changing, made on first
// use; n.mu is held.
func (n *node) lowerStateLocked() *lowerState {
	if n.lower == nil {
		n.lower = &lowerState{open: map[*handle]struct{}{}}
	}
	return n.lower
}

// hasLowerBacking reports whether the kernel inode of n may have a lower
// file as its passthrough backing file, or n has left its names for that
// reason: then no handle on the upper copy may be opened through n.
func (n *node) hasLowerBacking() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.lowerLocked()
	return len(l.open) > 0 || l.detached
}

// splitLocked gives n's names a new identity (a new kernel inode on the
// next lookup) and removes n from the tree; n's data is in the upper, and
// u.mu is held for writing. It returns the names to invalidate in the
// kernel once the locks are released.
func (n *node) splitLocked() ([]entryRef, error) {
	var st syscall.Stat_t
	rel := n.rel()
	if err := n.u.lstat(upperLayer, rel, &st); err != nil {
		return nil, err
	}
	old := n.StableAttr()
	n.u.copiedIno[st.Ino] = n.u.newSplitID(old)
	// The old identity is n's for good: should the name show the lower
	// file again (its upper copy removed directly in the upper dir), it
	// gets a new node too, not this one, which is only its readers'.
	n.u.retiredIDs[old] = n.u.newSplitID(old)
	var gone []entryRef
	for {
		name, p := n.Parent()
		if p == nil {
			break
		}
		if ok, _ := p.RmChild(name); !ok {
			break
		}
		gone = append(gone, entryRef{p, name})
	}
	n.mu.Lock()
	n.lowerStateLocked().detached = true
	n.mu.Unlock()
	n.u.note("split /%s from its lower readers (new node)", rel)
	return gone, nil
}

// invalidate tells the kernel to forget the names (NOTIFY_INVAL_ENTRY), so
// that opens which do not retry also find the new node. Called without
// locks: the kernel takes the directory's inode lock.
func invalidate(gone []entryRef) {
	for _, e := range gone {
		e.dir.NotifyEntry(e.name)
	}
}

// split splits n off its names if it still needs it (a lower passthrough
// handle, data in the upper) and reports whether it did.
func (n *node) split() bool {
	n.u.lockWrite()
	var gone []entryRef
	var err error
	n.mu.Lock()
	l := n.lowerLocked()
	need := len(l.open) > 0 && !l.detached && n.u.inUpper(n.at.chain) && n.at.data == ""
	n.mu.Unlock()
	if need {
		gone, err = n.splitLocked()
	}
	n.u.mu.Unlock()
	invalidate(gone)
	return need && err == nil
}

// openDetachedLocked opens a node split off its names: only the lower
// readers' reopens (through /proc/self/fd) reach it. A read gets the lower
// file the readers have; anything else is refused with ESTALE. n.mu is held.
func (n *node) openDetachedLocked(flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.ESTALE
	}
	for h := range n.lowerLocked().open {
		fd, err := syscall.Open(fdPath(h.fd), syscall.O_RDONLY|syscall.O_CLOEXEC|int(flags)&openFlags, 0)
		if err != nil {
			return nil, 0, errno(err)
		}
		fh, fuseFlags := n.newHandleLocked(fd, false)
		return fh, fuseFlags, 0
	}
	return nil, 0, syscall.ESTALE
}

// detachedReader returns a lower handle of n if n was split off its
// names, or nil.
func (n *node) detachedReader() *handle {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.lowerLocked().detached {
		return nil
	}
	for h := range n.lowerLocked().open {
		return h
	}
	return nil
}

// anyLowerHandle returns a lower passthrough handle of n, or nil.
func (n *node) anyLowerHandle() *handle {
	n.mu.Lock()
	defer n.mu.Unlock()
	for h := range n.lowerLocked().open {
		return h
	}
	return nil
}

// canPassthrough reports whether the daemon may register backing files:
// the kernel wants CAP_SYS_ADMIN in the initial user namespace. Without it
// go-fuse falls back to ordinary I/O, and lower files are better read
// through the daemon as before (no split, readers see copy-ups).
func canPassthrough() bool {
	if !userns.Initial() {
		return false
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<21) != 0 // CAP_SYS_ADMIN
		}
	}
	return false
}
