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
	if unix.Mknodat(work, tmp, unix.S_IFCHR, 0) != nil {
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
		return touch(fd, whiteout.OpaqueName)
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
	mk := func(tmp cow.At) error { return unix.Mknodat(tmp.Dir, tmp.Name, unix.S_IFCHR, 0) }
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
