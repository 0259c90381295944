// Package userns tells whether this process runs in the initial user
// namespace. It imports nothing of ours, so every package can share it.
package userns

import (
	"os"
	"strings"
)

// uidMapPath is read by Initial; a test may point it elsewhere.
var uidMapPath = "/proc/self/uid_map"

// Initial reports whether we run in the initial user namespace: our uid
// map is the identity over all ids ("0 0 4294967295"). When the map cannot
// be read it answers false, so a caller that needs the initial namespace
// for a privilege (trusted.* xattrs, FUSE passthrough) does not assume it.
func Initial() bool {
	ident, err := identity()
	return err == nil && ident
}

// Inside reports whether we run in a user namespace other than the
// initial one. When the map cannot be read (no /proc) it answers false:
// the caller then acts as on a host.
func Inside() bool {
	ident, err := identity()
	return err == nil && !ident
}

// identity reports whether our uid map is the identity over all ids.
func identity() (bool, error) {
	b, err := os.ReadFile(uidMapPath)
	if err != nil {
		return false, err
	}
	return strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295", nil
}
