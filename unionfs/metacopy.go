package unionfs

import (
	"errors"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/units"
	"github.com/unionfsd/unionfsd/whiteout"
)

// Metadata-only copy-up: chown, chmod, utimes, xattr changes and renames of
// a lower file put an empty file of the same size in the upper (a hole)
// carrying the new metadata and whiteout.MetacopyXattr, whose value is the
// lower data file. Reads go to that file; the first open for write or
// truncate copies the data in (completeMetacopy), atomically. So `chown -R`
// over an image writes no data.

// metacopyData returns the data file of an upper regular file that is a
// metadata-only copy, or "". (Its block count cannot tell: ext4 counts an
// external xattr block in st_blocks, so a small metacopy file can show as
// many blocks as a full one. The xattr is read for every non-empty upper
// file; the upper holds only what changed.)
func metacopyData(path string, st *syscall.Stat_t) string {
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size == 0 {
		return ""
	}
	// Probe the size first: the common answer, ENODATA, then costs no
	// allocation on this lookup path.
	sz, err := unix.Lgetxattr(path, whiteout.MetacopyXattr, nil)
	if err != nil || sz == 0 {
		return ""
	}
	buf := make([]byte, sz)
	n, err := unix.Lgetxattr(path, whiteout.MetacopyXattr, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// metacopyBlocks is the block count a metadata-only copy reports: its data's.
func metacopyBlocks(data string) int64 {
	var st syscall.Stat_t
	if syscall.Stat(data, &st) != nil {
		return 0
	}
	return st.Blocks
}

// copyUpMeta brings n into the upper for a metadata change: a regular file
// with data becomes a metadata-only copy when Config.Metacopy is on;
// anything else is copied up whole. The caller holds u.mu for writing.
func (n *node) copyUpMeta() error {
	chain := n.getChain()
	if n.u.inUpper(chain) || !n.u.cfg.Metacopy {
		return n.copyUp(-1)
	}
	rel := n.rel()
	src := n.u.layerPath(chain[0], rel)
	var st syscall.Stat_t
	if err := syscall.Lstat(src, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size == 0 {
		return n.copyUp(-1)
	}
	parent := n.parentNode()
	if parent == nil {
		return syscall.ENOENT
	}
	if err := parent.copyUp(-1); err != nil {
		return err
	}
	restore := keepTimes(n.u.upperPath(parentRel(rel)))
	ust, err := n.u.cow.CopyUpMeta(src, n.u.upperPath(rel), whiteout.MetacopyXattr, []byte(src))
	restore()
	if err != nil {
		return err
	}
	n.u.note("metadata copy-up /%s from layer %d (%s)", rel, chain[0], n.u.layers[chain[0]].path)
	n.u.copiedIno[ust.Ino] = n.StableAttr()
	n.setState(&found{chain: []int{upperLayer}, data: src})
	return nil
}

// completeMetacopy copies the data of a metadata-only copy into the upper
// (only its first size bytes when size >= 0): the upper file is replaced by
// a full one with the same metadata. No-op for other nodes.
func (n *node) completeMetacopy(size int64) error {
	data := n.dataPath()
	if data == "" {
		return nil
	}
	p := n.u.upperPath(n.rel())
	var old syscall.Stat_t
	if err := syscall.Lstat(p, &old); err != nil {
		return err
	}
	start := time.Now()
	st, err := n.u.cow.CopyUpData(data, p, size)
	if errors.Is(err, syscall.ENOENT) {
		return syscall.EIO // the lower data is gone: unionfsd check reports it
	}
	if err != nil {
		return err
	}
	n.u.note("data copy-up /%s from %s, %s, %s", n.rel(), data, units.Bytes(st.Size), time.Since(start).Round(10*time.Microsecond))
	delete(n.u.copiedIno, old.Ino)
	n.u.reusedIno[old.Ino]++
	n.u.copiedIno[st.Ino] = n.StableAttr()
	n.setState(&found{chain: []int{upperLayer}})
	return nil
}
