package unionfs

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/internal/metacopy"
	"github.com/unionfsd/unionfsd/internal/units"
)

// Metadata-only copy-up: chown, chmod, utimes, xattr changes and renames of
// a lower file put an empty file of the same size in the upper (a hole)
// carrying the new metadata and a pointer xattr (internal/metacopy: its
// name, trust rules and value), the data's path in the lower layers. Reads
// go to that file; the first open for write or truncate copies the data in
// (completeMetacopy), atomically. So `chown -R` over an image writes no
// data.

// metacopyData returns the data path of the upper regular file name in the
// open upper directory dir when it is a metadata-only copy, or "". A
// pointer this mount may not follow (metacopy off, wrong xattr namespace,
// malformed: internal/metacopy) is refused with EPERM rather than read as
// the upper file's own, empty, content. (Its block count cannot tell a
// metacopy file: ext4 counts an external xattr block in st_blocks. The
// xattr is read for every non-empty upper file; the upper holds only what
// changed.)
func (u *unionFS) metacopyData(dir int, name string, st *syscall.Stat_t) (string, error) {
	get := func(attr string, dest []byte) (int, error) { return getxattrAt(dir, name, attr, dest) }
	ptr, err := metacopy.ReadWith(get, st.Mode, st.Size)
	if err != nil {
		return "", err
	}
	return ptr.Data(u.metacopyTrusted)
}

// metacopyBlocks is the block count a metadata-only copy reports: its data's.
func (u *unionFS) metacopyBlocks(data string) int64 {
	fd, _, err := metacopy.Open(u.lowerRoots(), data, unix.O_PATH)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Blocks
}

// copyUpMeta brings n into the upper for a metadata change: a regular file
// with data becomes a metadata-only copy when Config.Metacopy is on;
// anything else is copied up whole. The caller holds u.mu for writing.
func (n *node) copyUpMeta() error {
	chain := n.getChain()
	// A pointer this mount would refuse to follow is never written.
	if n.u.inUpper(chain) || !n.u.metacopyTrusted {
		return n.copyUp(-1)
	}
	rel := n.rel()
	var st syscall.Stat_t
	if err := n.u.lstat(chain[0], rel, &st); err != nil {
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
	restore := n.u.keepTimes(parentRel(rel))
	var ust unix.Stat_t
	err := n.u.at(chain[0], rel, func(sdir int, name string) error {
		return n.u.at(upperLayer, rel, func(ddir int, _ string) (err error) {
			ust, err = n.u.cow.CopyUpMeta(cow.At{Dir: sdir, Name: name}, cow.At{Dir: ddir, Name: name}, metacopy.Xattr(), metacopy.Value(rel))
			return err
		})
	})
	restore()
	if err != nil {
		return err
	}
	n.u.note("metadata copy-up /%s from layer %d (%s)", rel, chain[0], n.u.layers[chain[0]].path)
	n.u.copiedIno[ust.Ino] = n.StableAttr()
	n.setState(&found{chain: []int{upperLayer}, data: rel})
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
	rel := n.rel()
	var old syscall.Stat_t
	if err := n.u.lstat(upperLayer, rel, &old); err != nil {
		return err
	}
	fd, li, err := metacopy.Open(n.u.lowerRoots(), data, unix.O_RDONLY)
	if err != nil {
		return err // EIO when the lower data is gone: unionfsd check reports it
	}
	in := os.NewFile(uintptr(fd), data)
	defer in.Close()
	start := time.Now()
	var st unix.Stat_t
	err = n.u.at(upperLayer, rel, func(ddir int, dname string) (err error) {
		st, err = n.u.cow.CopyUpDataFrom(in, cow.At{Dir: ddir, Name: dname}, size)
		return err
	})
	if err != nil {
		return err
	}
	if n.u.rw {
		li++ // lowerRoots skips the upper
	}
	n.u.note("data copy-up /%s from %s in layer %d, %s, %s", rel, data, li, units.Bytes(st.Size), time.Since(start).Round(10*time.Microsecond))
	delete(n.u.copiedIno, old.Ino)
	n.u.reusedIno[old.Ino]++
	n.u.copiedIno[st.Ino] = n.StableAttr()
	n.setState(&found{chain: []int{upperLayer}})
	return nil
}
