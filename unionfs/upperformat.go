package unionfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// The upper's own format for deletions and opaque dirs (Config.WhiteoutFormat):
// OCI (".wh.NAME" beside the name, ".wh..wh..opq" inside a dir) by default,
// or kernel overlay's (a 0/0 char device in place of the name, an opaque
// xattr on the dir). Both are always read, in every layer.

func (u *unionFS) overlayFormat() bool { return u.cfg.WhiteoutFormat == WhiteoutOverlay }

// upperWhiteout reports whether the upper hides dir/name from the layers
// below, in either format.
func (u *unionFS) upperWhiteout(dir, name string) (bool, error) {
	if oci, err := u.hasWhiteout(upperLayer, dir, name); oci || err != nil {
		return oci, err
	}
	return isOverlayWhiteoutAt(u.upperPath(dir), name), nil
}

// clearOverlayWhiteout removes a 0/0 device standing at dir/name, so a new
// entry can take the name. The lower name shows for the moment in between.
func (u *unionFS) clearOverlayWhiteout(dir, name string) error {
	if !isOverlayWhiteoutAt(u.upperPath(dir), name) {
		return nil
	}
	p := u.upperPath(joinRel(dir, name))
	if err := syscall.Unlink(p); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove whiteout %s: %w", p, err)
	}
	u.note("removed whiteout %s", p)
	return nil
}

// markOpaque makes the upper directory at path opaque in the upper's format.
func (u *unionFS) markOpaque(path string) error {
	if !u.overlayFormat() {
		return touch(path + "/" + whiteout.OpaqueName)
	}
	name := whiteout.TrustedOpaqueXattr
	if os.Geteuid() != 0 {
		name = whiteout.UserOpaqueXattr
	}
	if err := unix.Lsetxattr(path, name, []byte("y"), 0); err != nil {
		return fmt.Errorf("opaque %s: %w", path, err)
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
	mk := func(tmp string) error { return unix.Mknod(tmp, unix.S_IFCHR, 0) }
	var err error
	if upperEntry {
		u.retire(p)
		err = u.cow.Stage(p, true, mk)
	} else {
		err = mk(p)
	}
	if err != nil {
		return fmt.Errorf("whiteout %s: %w", p, err)
	}
	u.note("whiteout %s (char 0/0)", p)
	return nil
}
