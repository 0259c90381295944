package main

import (
	"math"
	"strconv"
	"strings"

	"github.com/unionfsd/unionfsd/unionfs"
)

// (podman, buildah, CRI-O) passes to its mount_program, and the whiteout
// format of the upper.
type containerOptions struct {
	uidMap, gidMap       []unionfs.IDMap
	squashToRoot         bool
	squashUID, squashGID *uint32
	staticNlink          bool
	whiteoutFormat       string // "" when not given
	metacopy             *bool
}

// ignoredOptions are passed by mount(8), mount.fuse3, fstab entries or
// scripts written for fuse-overlayfs, unionfs-fuse or kernel overlay. They

// containerValueOptions are the container options that take a value.
var containerValueOptions = map[string]bool{
	"uidmapping": true, "gidmapping": true, "squash_to_uid": true, "squash_to_gid": true,
	"whiteout_format": true, "metacopy": true, "threaded": true, "xattr_permissions": true,
}

// parse applies one of containerValueOptions.
func (co *containerOptions) parse(key, val string) error {
	var err error
	switch key {
	case "uidmapping":
		co.uidMap, err = parseIDMapping(key, val)
	case "gidmapping":
		co.gidMap, err = parseIDMapping(key, val)
	case "squash_to_uid":
		co.squashUID, err = parseID(key, val)
	case "squash_to_gid":
		co.squashGID, err = parseID(key, val)
	case "whiteout_format":
		co.whiteoutFormat, err = parseWhiteoutFormat("-o whiteout_format="+val, val)
	case "metacopy":
		co.metacopy, err = parseSwitch(key, val)
	case "threaded":
		// fuse-overlayfs serves requests on one thread unless threaded=1;
		// we always serve them in parallel.
		err = checkNumber(key, val, math.MaxInt32)
	case "xattr_permissions":
		// fuse-overlayfs can keep ownership and modes of the upper in an
		// override_stat xattr (1: security.fuseoverlayfs.*, 2:
		// user.containers.*) instead of the inode. We always store them in
		// the inode: rootless podman runs us inside its user namespace,
		// where chown to the subordinate ids works.
		err = checkNumber(key, val, 2)
	}
	return err
}

// parseIDMapping reads fuse-overlayfs's "ID:MAPPED:COUNT[:ID:MAPPED:COUNT...]"
// (containers-storage writes its ContainerID:HostID:Size there). As in
// fuse-overlayfs, ID is the id stored in the layers and MAPPED the id the
// mount shows: a layer file owned by ID+k shows as owned by MAPPED+k, and
// a file created or chowned through the mount by MAPPED+k is stored as
// ID+k. In unionfs.IDMap terms ID is HostID (what the layers store) and
// MAPPED is ContainerID (what the mount shows). Unionfs.Config.Validate
// checks sizes, overlaps and the user namespace.
func parseIDMapping(key, val string) ([]unionfs.IDMap, error) {
	// containers-storage writes a colon before the first range
	// ("uidmapping=:0:1:65536"); fuse-overlayfs skips empty fields.
	fields := strings.Split(strings.TrimPrefix(val, ":"), ":")
	if val == "" || val == ":" || len(fields)%3 != 0 {
		return nil, usagef("-o %s=%s: want ID:MAPPED:COUNT, several joined by ':' (e.g. %s=0:100000:65536)",
			key, val, key)
	}
	var maps []unionfs.IDMap
	for i := 0; i < len(fields); i += 3 {
		var n [3]uint32
		for j := range n {
			v, err := strconv.ParseUint(fields[i+j], 10, 32)
			if err != nil {
				return nil, usagef("-o %s=%s: %q is not a number from 0 to %d", key, val, fields[i+j], uint32(math.MaxUint32))
			}
			n[j] = uint32(v)
		}
		maps = append(maps, unionfs.IDMap{HostID: n[0], ContainerID: n[1], Size: n[2]})
	}
	return maps, nil
}

// parseID reads a uid or gid; 4294967295 is (uid_t)-1, "no id", not an id.
func parseID(key, val string) (*uint32, error) {
	v, err := strconv.ParseUint(val, 10, 32)
	if err != nil || v == math.MaxUint32 {
		return nil, usagef("-o %s=%s: want an id from 0 to %d", key, val, uint32(math.MaxUint32-1))
	}
	id := uint32(v)
	return &id, nil
}

// checkNumber checks for a number from 0 to max, for options we accept and
// ignore: a typo still gets an error.
func checkNumber(key, val string, max int64) error {
	v, err := strconv.ParseInt(val, 10, 64)
	if err != nil || v < 0 || v > max {
		return usagef("-o %s=%s: want a number from 0 to %d", key, val, max)
	}
	return nil
}

// parseWhiteoutFormat checks a --whiteout-format / whiteout_format= value;
// what names the setting in the error.
func parseWhiteoutFormat(what, val string) (string, error) {
	switch strings.ToLower(val) {
	case unionfs.WhiteoutOCI:
		return unionfs.WhiteoutOCI, nil
	case unionfs.WhiteoutOverlay:
		return unionfs.WhiteoutOverlay, nil
	}
	return "", usagef("%s: unknown whiteout format (want %s or %s)", what, unionfs.WhiteoutOCI, unionfs.WhiteoutOverlay)
}

// configure copies the container options into cfg. squash_to_uid and
// squash_to_gid win over squash_to_root, as in fuse-overlayfs.
func (co *containerOptions) configure(cfg *unionfs.Config) {
	cfg.UIDMap, cfg.GIDMap = co.uidMap, co.gidMap
	if co.squashToRoot {
		uid, gid := uint32(0), uint32(0)
		cfg.SquashUID, cfg.SquashGID = &uid, &gid
	}
	if co.squashUID != nil {
		cfg.SquashUID = co.squashUID
	}
	if co.squashGID != nil {
		cfg.SquashGID = co.squashGID
	}
	cfg.StaticNlink = co.staticNlink
	if co.whiteoutFormat != "" {
		cfg.WhiteoutFormat = co.whiteoutFormat
	}
	if co.metacopy != nil {
		cfg.Metacopy = *co.metacopy
	}
}
