package unionfs

import (
	"errors"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
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
func metacopyData(dir int, name string, st *syscall.Stat_t) string {
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size == 0 {
		return ""
	}
	// Probe the size first: the common answer, ENODATA, then costs no
	// allocation on this lookup path.
	sz, err := getxattrAt(dir, name, whiteout.MetacopyXattr, nil)
	if err != nil || sz == 0 {
		return ""
	}
	buf := make([]byte, sz)
	n, err := getxattrAt(dir, name, whiteout.MetacopyXattr, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// metacopyBlocks is the block count a metadata-only copy reports: its data's.
func (u *unionFS) metacopyBlocks(data string) int64 {
	var st syscall.Stat_t
	li, rel, ok := u.dataLayer(data)
	if !ok || u.lstat(li, rel, &st) != nil {
		return 0
	}
	return st.Blocks
}

// dataLayer finds the lower layer and the path in it of a metadata-only
// copy's data file; the file is only ever opened beneath that layer.
func (u *unionFS) dataLayer(data string) (int, string, bool) {
	for li := range u.layers {
		if u.rw && li == upperLayer {
			continue
		}
		if rel, ok := strings.CutPrefix(data, u.layers[li].path+"/"); ok && rel != "" {
			return li, rel, true
		}
	}
	return 0, "", false
}

// openData opens a metadata-only copy's data file.
func (u *unionFS) openData(data string, flags int) (int, error) {
	li, rel, ok := u.dataLayer(data)
	if !ok {
		return -1, syscall.EIO
	}
	return u.openInLayer(li, rel, flags|syscall.O_NOFOLLOW)
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
			ust, err = n.u.cow.CopyUpMeta(cow.At{Dir: sdir, Name: name}, cow.At{Dir: ddir, Name: name}, whiteout.MetacopyXattr, []byte(src))
			return err
		})
	})
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
	rel := n.rel()
	var old syscall.Stat_t
	if err := n.u.lstat(upperLayer, rel, &old); err != nil {
		return err
	}
	li, dataRel, ok := n.u.dataLayer(data)
	if !ok {
		return syscall.EIO // not in a lower layer: unionfsd check reports it
	}
	start := time.Now()
	var st unix.Stat_t
	err := n.u.at(li, dataRel, func(sdir int, sname string) error {
		return n.u.at(upperLayer, rel, func(ddir int, dname string) (err error) {
			st, err = n.u.cow.CopyUpData(cow.At{Dir: sdir, Name: sname}, cow.At{Dir: ddir, Name: dname}, size)
			return err
		})
	})
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
