package unionfs

import (
	"slices"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/procfs"
)

// The daemon clears setuid/setgid itself (FUSE_HANDLE_KILLPRIV_V2). Without
// it the kernel asks for security.capability before every write (one
// GETXATTR round trip each, also for passthrough writes), because it cannot
// know whether the file has capabilities to drop. With it the kernel marks
// the inode "no privileges to kill" after the first check and leaves the
// clearing to us: it flags a WRITE or SETATTR by a caller without
// CAP_FSETID, and we drop the bits as the kernel would (setuid always,
// setgid with group-exec or when the caller is not in the file's group).
// File capabilities need nothing from us: our writes and truncates of the
// upper file make its filesystem drop them.
//
// A passthrough write sends no WRITE, so setuid/setgid files are opened
// without passthrough (newHandleLocked). For a file that becomes setuid
// while a passthrough open exists, the kernel sends an empty SETATTR before
// an unprivileged write, which Setattr takes as a request to clear the bits
// (isEmptySetattr, killRequest: the same empty SETATTR also stands for
// chown(f, -1, -1) and utimensat(UTIME_OMIT, UTIME_OMIT)).

// killSuidgid clears on the object open as fd what a write, truncate or
// chown by the unprivileged caller c clears (killBits).
func killSuidgid(fd int, c *fuse.Caller) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errno(err)
	}
	kill := killBits(&st, c)
	if kill == 0 {
		return 0
	}
	return errno(fchmodFd(fd, st.Mode&^unix.S_IFMT&^kill))
}

// killBits are the mode bits a change by caller c clears on the object st:
// setuid, and setgid when group-exec is set or c is not in the object's
// group; nothing on directories and symlinks.
func killBits(st *unix.Stat_t, c *fuse.Caller) uint32 {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR, unix.S_IFLNK:
		return 0
	}
	kill := st.Mode & unix.S_ISUID
	if st.Mode&unix.S_ISGID != 0 && (st.Mode&unix.S_IXGRP != 0 || !inGroup(c, st.Gid)) {
		kill |= unix.S_ISGID
	}
	return kill
}

// inGroup reports whether caller c is root or has gid among its groups
// (the request carries only the primary group; the others are in /proc).
func inGroup(c *fuse.Caller, gid uint32) bool {
	if c.Uid == 0 || c.Gid == gid {
		return true
	}
	groups, err := procfs.StatusField(strconv.FormatUint(uint64(c.Pid), 10), "Groups")
	return err == nil && slices.Contains(groups, strconv.FormatUint(uint64(gid), 10))
}

// fdNeedsKill reports whether a write to the open file fd by an
// unprivileged caller might have to clear bits of its mode.
func fdNeedsKill(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return true // be safe: no passthrough
	}
	return st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0
}
