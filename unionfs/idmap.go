package unionfs

import "syscall"

// overflowID is what an id outside the maps shows as (the kernel's
// overflowuid/overflowgid).
const overflowID = 65534

// toContainer maps an id stored in a layer to the id the mount shows.
func toContainer(maps []IDMap, host uint32) uint32 {
	if len(maps) == 0 {
		return host
	}
	for _, m := range maps {
		if host >= m.HostID && host-m.HostID < m.Size {
			return m.ContainerID + (host - m.HostID)
		}
	}
	return overflowID
}

// toHost maps an id given through the mount to the id stored in the upper.
func toHost(maps []IDMap, id uint32) (uint32, bool) {
	if len(maps) == 0 {
		return id, true
	}
	for _, m := range maps {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// showOwner rewrites a layer's stat owner into what the mount shows.
func (u *unionFS) showOwner(uid, gid *uint32) {
	*uid, *gid = toContainer(u.cfg.UIDMap, *uid), toContainer(u.cfg.GIDMap, *gid)
	if u.cfg.SquashUID != nil {
		*uid = *u.cfg.SquashUID
	}
	if u.cfg.SquashGID != nil {
		*gid = *u.cfg.SquashGID
	}
}

// hostOwner maps ids given through the mount (-1: unchanged) to stored ids.
// An id outside the maps cannot be stored: EINVAL, as chown(2) gives for an
// id the caller's user namespace does not map.
func (u *unionFS) hostOwner(uid, gid int) (int, int, syscall.Errno) {
	if uid >= 0 {
		h, ok := toHost(u.cfg.UIDMap, uint32(uid))
		if !ok {
			return 0, 0, syscall.EINVAL
		}
		uid = int(h)
	}
	if gid >= 0 {
		h, ok := toHost(u.cfg.GIDMap, uint32(gid))
		if !ok {
			return 0, 0, syscall.EINVAL
		}
		gid = int(h)
	}
	return uid, gid, 0
}
