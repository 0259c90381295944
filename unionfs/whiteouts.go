package unionfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/whiteout"
)

// Whiteouts and opaque marks in the upper: every one the union writes or
// removes is written or removed here (the bytes on disk by package
// whiteout's CreateFileAt and MakeDeviceAt).
//
// The upper's own format for deletions and opaque dirs (Config.WhiteoutFormat):
// OCI (".wh.NAME" beside the name, ".wh..wh..opq" inside a dir) by default,
// or kernel overlay's (a 0/0 char device in place of the name, an opaque
// xattr on the dir). Both are always read, in every layer.

func (u *unionFS) overlayFormat() bool { return u.cfg.WhiteoutFormat == WhiteoutOverlay }

// overlayWhiteoutFor reports whether deleting name writes an overlay-format
// whiteout (a 0/0 device named name): always in the overlay format, and in
// the OCI format for names too long to take the ".wh." prefix, when the
// upper can hold such a device. Both formats are always read, and layer
// export turns the device into ".wh.NAME".
func (u *unionFS) overlayWhiteoutFor(name string) bool {
	return u.overlayFormat() || !whiteout.NameFits(name) && u.deviceWhiteouts
}

// needsOpaqueParent reports whether deleting name from the layers below
// takes the last resort: an OCI upper that can hold no 0/0 device (an
// upper on kernel overlay, which refuses to make one; kernels before 5.8
// without CAP_MKNOD) and a name with no ".wh." form. The parent is then
// copied up whole and made opaque (hideLowers).
func (u *unionFS) needsOpaqueParent(name string) bool {
	return !u.overlayFormat() && !whiteout.NameFits(name) && !u.deviceWhiteouts
}

// probeDeviceWhiteouts reports whether the upper's filesystem lets us make
// a 0/0 device, trying once in the workdir.
func (u *unionFS) probeDeviceWhiteouts() bool {
	work, tmp := u.cow.WorkFd(), u.cow.TempName()
	if whiteout.MakeDeviceAt(work, tmp) != nil {
		return false
	}
	unix.Unlinkat(work, tmp, 0)
	return true
}

// hideLowers makes the upper directory n hide everything below it by
// itself: every entry of the merged directory is copied up, whole, and the
// directory is made opaque. Nothing in the merged view changes. The caller
// holds u.mu for writing and has copied n up.
func (n *node) hideLowers() error {
	rel := n.rel()
	if chain := n.getChain(); len(chain) > 1 {
		if err := n.u.materializeDir(chain, rel, n.StableAttr()); err != nil {
			return err
		}
	}
	if err := n.u.at(upperLayer, rel, n.u.markOpaque); err != nil {
		return err
	}
	n.u.note("opaque %s (a name too long for a whiteout file)", n.u.opaqueMarkName(n.u.upperPath(rel)))
	markUpperOnly(n.EmbeddedInode())
	return nil
}

// upperWhiteout reports whether the upper hides dir/name from the layers
// below, in either format.
func (u *unionFS) upperWhiteout(dir, name string) (bool, error) {
	fd, err := u.openDir(upperLayer, dir)
	if isMissing(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	return upperWhiteoutAt(fd, name)
}

// upperWhiteoutAt is upperWhiteout for name in the open upper directory dir.
func upperWhiteoutAt(dir int, name string) (bool, error) {
	if oci, err := hasWhiteoutAt(dir, name); oci || err != nil {
		return oci, err
	}
	return isOverlayWhiteoutAt(dir, name), nil
}

// clearOverlayWhiteoutAt removes a 0/0 device standing at name in the open
// upper directory dir, so a new entry can take the name; p names it in
// messages. The lower name shows for the moment in between.
func (u *unionFS) clearOverlayWhiteoutAt(dir int, name, p string) error {
	if !isOverlayWhiteoutAt(dir, name) {
		return nil
	}
	if err := unix.Unlinkat(dir, name, 0); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove whiteout %s: %w", p, err)
	}
	u.note("removed whiteout %s", p)
	return nil
}

// markOpaque makes the directory name in the upper directory dir opaque in
// the upper's format.
func (u *unionFS) markOpaque(dir int, name string) error {
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opaque %s: %w", name, err)
	}
	defer unix.Close(fd)
	if !u.overlayFormat() {
		return whiteout.CreateFileAt(fd, whiteout.OpaqueName)
	}
	x := whiteout.TrustedOpaqueXattr
	if os.Geteuid() != 0 {
		x = whiteout.UserOpaqueXattr
	}
	if err := fdSetxattr(fd, x, []byte("y"), 0); err != nil {
		return fmt.Errorf("opaque %s: %w", name, err)
	}
	return nil
}

// opaqueMarkName is how the trace names the opaque mark of path.
func (u *unionFS) opaqueMarkName(path string) string {
	if u.overlayFormat() {
		return path + " (overlay.opaque xattr)"
	}
	return path + "/" + whiteout.OpaqueName
}

// whiteoutInPlace turns the upper entry dir/name (if any) into an overlay
// whiteout, atomically: the 0/0 device is made in the workdir and renamed
// over the entry (exchanged and removed, for an emptied directory).
func (u *unionFS) whiteoutInPlace(dir, name string, upperEntry bool) error {
	p := u.upperPath(joinRel(dir, name))
	mk := func(tmp cow.At) error { return whiteout.MakeDeviceAt(tmp.Dir, tmp.Name) }
	err := u.at(upperLayer, joinRel(dir, name), func(d int, n string) error {
		if upperEntry {
			u.retire(d, n)
			return u.cow.Stage(cow.At{Dir: d, Name: n}, true, mk)
		}
		return mk(cow.At{Dir: d, Name: n})
	})
	if err != nil {
		return fmt.Errorf("whiteout %s: %w", p, err)
	}
	u.note("whiteout %s (char 0/0)", p)
	return nil
}

// createWhiteout writes the OCI whiteout for dir/name in the upper: a hard
// link to one shared empty file in the workdir, as overlay links its 0/0
// whiteouts to one shared device. A link is atomic and much cheaper than a
// new inode (rm -rf of a lower tree makes one whiteout per file). The
// whiteout is still an empty regular file under its .wh. name, which is all
// the OCI rules look at; exports write each as a file of its own.
func (u *unionFS) createWhiteout(dir, name string) error {
	p := joinRel(dir, whiteout.Name(name))
	err := u.at(upperLayer, p, u.linkWhiteout)
	if errors.Is(err, syscall.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("whiteout %s: %w", u.upperPath(p), err)
	}
	u.note("whiteout %s", u.upperPath(p))
	return nil
}

// sharedWhiteoutName is the file in the workdir every whiteout links to.
const sharedWhiteoutName = "whiteout"

// linkWhiteout links name in dir to the shared whiteout, making a new one
// when it is missing or has as many links as the filesystem allows; if
// linking is not possible at all, name gets an empty file of its own.
func (u *unionFS) linkWhiteout(dir int, name string) error {
	work := u.cow.WorkFd()
	err := unix.Linkat(work, sharedWhiteoutName, dir, name, 0)
	if err == syscall.ENOENT || err == syscall.EMLINK {
		if err = u.newSharedWhiteout(); err == nil {
			err = unix.Linkat(work, sharedWhiteoutName, dir, name, 0)
		}
	}
	if err == nil || err == syscall.EEXIST {
		return err
	}
	return whiteout.CreateFileAt(dir, name)
}

// newSharedWhiteout puts a fresh empty file at the shared whiteout's name,
// atomically.
func (u *unionFS) newSharedWhiteout() error {
	work, tmp := u.cow.WorkFd(), u.cow.TempName()
	if err := whiteout.CreateFileAt(work, tmp); err != nil {
		return err
	}
	if err := unix.Renameat(work, tmp, work, sharedWhiteoutName); err != nil {
		unix.Unlinkat(work, tmp, 0)
		return err
	}
	return nil
}

// removeWhiteout deletes the upper's whiteout for dir/name if there is one.
func (u *unionFS) removeWhiteout(dir, name string) error {
	if !whiteout.NameFits(name) {
		return nil
	}
	p := joinRel(dir, whiteout.Name(name))
	err := u.at(upperLayer, p, func(d int, n string) error { return unix.Unlinkat(d, n, 0) })
	if err == nil {
		u.note("removed whiteout %s", u.upperPath(p))
	}
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("remove whiteout %s: %w", u.upperPath(p), err)
}

// clearUpperDir removes the whiteouts and markers of an upper directory whose
// merged view is empty, so the directory itself can be removed or replaced.
func (u *unionFS) clearUpperDir(rel string) error {
	return u.inDir(upperLayer, rel, func(dir int) error {
		ents, err := readDirentsFd(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.name == "." || e.name == ".." {
				continue
			}
			if !whiteout.IsWhiteoutName(e.name) && !(e.dtype == syscall.DT_CHR && isOverlayWhiteoutAt(dir, e.name)) {
				return syscall.ENOTEMPTY
			}
			if err := cow.RemoveAllAt(dir, e.name); err != nil {
				return err
			}
		}
		return nil
	})
}

// renameThenWhiteout renames and puts a 0/0 device at the source where
// RENAME_WHITEOUT is missing (filesystem or privilege). The device is made
// in the workdir first, so after the rename only a rename within the upper
// is left to do; the lower name shows for the moment in between.
func (u *unionFS) renameThenWhiteout(sdir int, sname string, ddir int, dname string) error {
	work, tmp := u.cow.WorkFd(), u.cow.TempName()
	if err := whiteout.MakeDeviceAt(work, tmp); err != nil {
		return err
	}
	if err := unix.Renameat(sdir, sname, ddir, dname); err != nil {
		unix.Unlinkat(work, tmp, 0)
		return err
	}
	if err := unix.Renameat2(work, tmp, sdir, sname, unix.RENAME_NOREPLACE); err != nil {
		unix.Unlinkat(work, tmp, 0)
		u.note("no whiteout at %s: %v", sname, err)
	}
	return nil
}
