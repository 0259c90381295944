package unionfs

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/procfs"
)

// trustedPrefix starts the xattrs only CAP_SYS_ADMIN may see.
const trustedPrefix = "trusted."

// capSysAdmin is CAP_SYS_ADMIN's bit in /proc/PID/status CapEff.
const capSysAdmin = 21

// mayListTrusted reports whether the caller of a request may see trusted.*
// names: the kernel lists them only to a caller with CAP_SYS_ADMIN in the
// initial user namespace (ext4, tmpfs, and overlay's ovl_can_list alike).
// The daemon, often root, reads every name, so it applies that rule for
// the caller: CAP_SYS_ADMIN effective, in the daemon's user namespace. (A
// daemon in another user namespace sees no trusted.* names at all.) When
// the caller cannot be checked (a pid outside our pid namespace, gone),
// the answer is no.
func mayListTrusted(ctx context.Context) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 {
		return false
	}
	pid := strconv.FormatUint(uint64(c.Pid), 10)
	caps, err := procfs.StatusField(pid, "CapEff")
	if err != nil || len(caps) != 1 {
		return false
	}
	eff, err := strconv.ParseUint(caps[0], 16, 64)
	if err != nil || eff&(1<<capSysAdmin) == 0 {
		return false
	}
	return sameUserNS(pid)
}

// sameUserNS reports whether process pid is in our user namespace.
func sameUserNS(pid string) bool {
	var theirs, ours unix.Stat_t
	if unix.Stat("/proc/"+pid+"/ns/user", &theirs) != nil || unix.Stat("/proc/self/ns/user", &ours) != nil {
		return false
	}
	return theirs.Dev == ours.Dev && theirs.Ino == ours.Ino
}

// hideTrusted drops trusted.* names from a listing for a caller who may
// not see them.
func hideTrusted(ctx context.Context, names []string) []string {
	if !slices.ContainsFunc(names, isTrusted) || mayListTrusted(ctx) {
		return names // the common case, no trusted.* name, asks /proc nothing
	}
	out := names[:0]
	for _, n := range names {
		if !isTrusted(n) {
			out = append(out, n)
		}
	}
	return out
}

func isTrusted(name string) bool { return strings.HasPrefix(name, trustedPrefix) }
