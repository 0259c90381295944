package unionfs

import (
	"errors"
	"hash/fnv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// openInLayer opens rel in layer li the way the kernel would open it inside
// the layer: beneath the layer dir, with no symbolic link followed on the
// way. A name swapped for a symlink (or a dir for a symlink to elsewhere)
// between the kernel's lookup and our open then fails with ELOOP instead of
// opening a file outside the layer.
func (u *unionFS) openInLayer(li int, rel string, flags int) (int, error) {
	// openat2 refuses flags it does not know, and the kernel passes FUSE
	// internal ones along (__FMODE_EXEC on execve).
	return openBeneath(u.layers[li].root, rel, flags&openFlags, 0)
}

// openFlags are the open(2) flags passed on to a layer file.
const openFlags = unix.O_ACCMODE | unix.O_APPEND | unix.O_TRUNC | unix.O_NONBLOCK | unix.O_DIRECT |
	unix.O_DSYNC | unix.O_SYNC | unix.O_NOATIME | unix.O_LARGEFILE | unix.O_CLOEXEC | unix.O_DIRECTORY |
	unix.O_NOFOLLOW | unix.O_PATH

// inoOf is the inode number the mount shows for a file found in layer li.
func (u *unionFS) inoOf(li int, realIno uint64) uint64 {
	if u.rw && li == upperLayer {
		if orig, ok := u.copiedIno[realIno]; ok {
			return orig.Ino
		}
	}
	return realIno | u.layers[li].inoHigh
}

// identity is the go-fuse identity of an object found in layer li at rel:
// its shown inode number, and a generation that keeps the names of a
// hard-linked lower file apart. Each such name must be its own inode, since
// a copy-up gives that name alone a new file (as overlay without index=on
// does); they keep the shared st_ino, as on overlay.
func (u *unionFS) identity(li int, st *syscall.Stat_t, rel string) fs.StableAttr {
	id := fs.StableAttr{Mode: st.Mode & syscall.S_IFMT}
	if u.rw && li == upperLayer {
		if orig, ok := u.copiedIno[st.Ino]; ok {
			return orig
		}
	}
	id.Ino = st.Ino | u.layers[li].inoHigh
	if u.rw && li == upperLayer {
		id.Gen = u.reusedIno[st.Ino]
	} else if st.Nlink > 1 && id.Mode != syscall.S_IFDIR {
		h := fnv.New64a()
		h.Write([]byte(rel))
		id.Gen = h.Sum64() | 1
	}
	return u.unretired(id)
}

// found is the result of resolving one name in a merged directory.
type found struct {
	chain []int // layers holding it: one for a non-dir, the merge chain for a dir
	st    syscall.Stat_t
	data  string // for a metadata-only copy in the upper: its data's path in the lower layers
}

// isDir reports whether the resolved object is a directory.
func (f *found) isDir() bool { return f.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// errNotFound means the name is absent or whited out.
var errNotFound = syscall.ENOENT

// resolve finds name in the directory rel whose merge chain is dirChain.
// Layers are searched top-down: the first layer holding a non-directory wins;
// directories merge until an opaque one; a whiteout hides the layers below it.
// An entry beats a whiteout for the same name in the same layer (that state
// only exists between the two steps of a create over a whiteout).
func (u *unionFS) resolve(dirChain []int, rel, name string) (*found, error) {
	var f found
	for i, li := range dirChain {
		hides, err := u.resolveIn(&f, li, rel, name, i == len(dirChain)-1)
		if err != nil {
			return nil, err
		}
		if hides {
			break
		}
	}
	if len(f.chain) == 0 {
		return nil, errNotFound
	}
	return &f, nil
}

// resolveIn adds what layer li holds for name in the directory rel to f,
// and reports whether it hides the layers below.
func (u *unionFS) resolveIn(f *found, li int, rel, name string, last bool) (bool, error) {
	dir, release, err := u.dirFd(li, rel)
	if isMissing(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer release()
	var st syscall.Stat_t
	err = lstatAt(dir, name, &st)
	if err == nil {
		if whiteout.IsOverlayWhiteoutMode(st.Mode, st.Rdev) {
			return true, nil
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if len(f.chain) == 0 {
				f.chain, f.st = u.single[li], st
				if u.rw && li == upperLayer {
					if f.data, err = u.metacopyData(dir, name, &st); err != nil {
						return false, err
					}
				}
			}
			return true, nil
		}
		if len(f.chain) == 0 {
			f.st = st
		}
		f.chain = append(f.chain, li)
		if last {
			return true, nil
		}
		return isOpaqueAt(dir, name)
	}
	if !isMissing(err) {
		return false, err
	}
	if last {
		return true, nil
	}
	return hasWhiteoutAt(dir, name)
}

// hasWhiteout reports whether layer li holds an OCI whiteout for rel/name.
func (u *unionFS) hasWhiteout(li int, rel, name string) (bool, error) {
	dir, release, err := u.dirFd(li, rel)
	if isMissing(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer release()
	return hasWhiteoutAt(dir, name)
}

// hasWhiteoutAt reports whether the open directory dir holds an OCI
// whiteout for name.
func hasWhiteoutAt(dir int, name string) (bool, error) {
	if !whiteout.NameFits(name) {
		return false, nil // no .wh. name that long can exist
	}
	var st syscall.Stat_t
	err := lstatAt(dir, whiteout.Name(name), &st)
	if err == nil {
		return true, nil
	}
	if isMissing(err) {
		return false, nil
	}
	return false, err
}

// isOpaqueAt reports whether the directory name in the open directory dir
// is opaque in either format: it holds ".wh..wh..opq" or carries an overlay
// opaque xattr.
func isOpaqueAt(dir int, name string) (bool, error) {
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	return isOpaqueFd(fd)
}

// isOpaqueFd is isOpaqueAt for a directory open as fd.
func isOpaqueFd(fd int) (bool, error) {
	var st syscall.Stat_t
	err := lstatAt(fd, whiteout.OpaqueName, &st)
	if err == nil {
		return true, nil
	}
	if !isMissing(err) {
		return false, err
	}
	return whiteout.HasOpaqueXattrFd(fd)
}

// existsBelow reports whether name is visible in the layers of dirChain under
// the upper, i.e. whether removing it from the upper needs a whiteout.
func (u *unionFS) existsBelow(dirChain []int, rel, name string) (bool, error) {
	lower := lowerPart(u, dirChain)
	if len(lower) == 0 {
		return false, nil
	}
	_, err := u.resolve(lower, rel, name)
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return err == nil, err
}

// lowerPart is the chain without the upper layer.
func lowerPart(u *unionFS, chain []int) []int {
	if u.rw && len(chain) > 0 && chain[0] == upperLayer {
		return chain[1:]
	}
	return chain
}

// inUpper reports whether a chain's top layer is the upper.
func (u *unionFS) inUpper(chain []int) bool {
	return u.rw && len(chain) > 0 && chain[0] == upperLayer
}

// dirEntry is one entry of a merged directory listing.
type dirEntry struct {
	name  string
	ino   uint64
	dtype uint8
	layer int // the layer whose entry shows
}

// readMerged lists the merged directory rel with merge chain chain, in the
// order of the topmost layers first. Whiteouts and markers never show.
func (u *unionFS) readMerged(chain []int, rel string) ([]dirEntry, error) {
	var out []dirEntry
	seen := map[string]bool{}
	for _, li := range chain {
		err := u.inDir(li, rel, func(dir int) error {
			ents, err := readDirentsFd(dir)
			if err != nil {
				return err
			}
			out = u.mergeLayer(out, seen, li, dir, ents)
			return nil
		})
		if isMissing(err) {
			continue // changed under us; the next lookup will notice
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mergeLayer adds the entries ents of layer li's directory dir to a merged
// listing.
func (u *unionFS) mergeLayer(out []dirEntry, seen map[string]bool, li, dir int, ents []rawDirent) []dirEntry {
	// Whiteouts of this layer hide names of the layers below only.
	var hides []string
	for _, e := range ents {
		if e.name == "." || e.name == ".." {
			continue
		}
		if target, ok := whiteout.Target(e.name); ok {
			hides = append(hides, target)
			continue
		}
		if whiteout.IsWhiteoutName(e.name) {
			continue // opaque marker, our workdir, other reserved names
		}
		if e.dtype == syscall.DT_CHR && isOverlayWhiteoutAt(dir, e.name) {
			hides = append(hides, e.name)
			continue
		}
		if seen[e.name] {
			continue
		}
		seen[e.name] = true
		out = append(out, dirEntry{name: e.name, ino: u.inoOf(li, e.ino), dtype: e.dtype, layer: li})
	}
	for _, h := range hides {
		seen[h] = true
	}
	return out
}

// isOverlayWhiteoutAt reports whether name in the open directory dir is a
// 0/0 character device.
func isOverlayWhiteoutAt(dir int, name string) bool {
	var st syscall.Stat_t
	if err := lstatAt(dir, name, &st); err != nil {
		return false
	}
	return whiteout.IsOverlayWhiteoutMode(st.Mode, st.Rdev)
}
