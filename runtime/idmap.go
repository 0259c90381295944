package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// subIDRange is one line of /etc/subuid or /etc/subgid for our user.
type subIDRange struct{ start, count uint32 }

// readSubIDs returns the ranges path gives to the user (by name or uid).
func readSubIDs(path, name string, id int) ([]subIDRange, error) {
	var out []subIDRange
	err := readColonFile(path, func(f []string) {
		if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(id)) {
			return
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 == nil && err2 == nil && count > 0 {
			out = append(out, subIDRange{uint32(start), uint32(count)})
		}
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

// mapWithRanges maps container id 0 to self and 1.. to the ranges in order.
func mapWithRanges(self uint32, ranges []subIDRange) []specs.LinuxIDMapping {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: self, Size: 1}}
	next := uint32(1)
	for _, r := range ranges {
		m = append(m, specs.LinuxIDMapping{ContainerID: next, HostID: r.start, Size: r.count})
		next += r.count
	}
	return m
}

// rootlessMaps picks the user namespace maps of a rootless container: the
// caller is root inside; with ranges in /etc/subuid and /etc/subgid and the
// newuidmap/newgidmap helpers installed, ids 1.. map to those ranges, so
// the container can have other users. Otherwise only root exists inside.
func rootlessMaps(warn func(string)) (uidMap, gidMap []specs.LinuxIDMapping) {
	uid, gid := os.Getuid(), os.Getgid()
	single := func() ([]specs.LinuxIDMapping, []specs.LinuxIDMapping) {
		return []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(uid), Size: 1}},
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(gid), Size: 1}}
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	subU, errU := readSubIDs("/etc/subuid", name, uid)
	subG, errG := readSubIDs("/etc/subgid", name, uid)
	if errU != nil || errG != nil || len(subU) == 0 || len(subG) == 0 {
		return single()
	}
	if uid != 0 && !haveIDMapHelpers() {
		warn("newuidmap/newgidmap not found (apt-get install uidmap): the container gets only uid 0 and gid 0")
		return single()
	}
	return mapWithRanges(uint32(uid), subU), mapWithRanges(uint32(gid), subG)
}

func haveIDMapHelpers() bool {
	_, err1 := exec.LookPath("newuidmap")
	_, err2 := exec.LookPath("newgidmap")
	return err1 == nil && err2 == nil
}

// mapsToHostRoot tells whether we are root and our uid 0 is uid 0 of the
// parent user namespace (the host's root, or as good as: a user namespace
// made by root that maps 0 to 0). A rootless container of ours maps its
// root to our uid, so it would run as the host's root. (Mapping root's
// subordinate ids instead would need the store's root-owned layers to be
// stored as those ids, as a rootless user's are.)
func mapsToHostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "0" {
			return f[1] == "0"
		}
	}
	return false
}

// needsHelper tells whether the maps must be written by newuidmap and
// newgidmap: an unprivileged process may itself only map its own ids.
func needsHelper(uidMap, gidMap []specs.LinuxIDMapping) bool {
	if os.Geteuid() == 0 {
		return false
	}
	self := func(m []specs.LinuxIDMapping, id int) bool {
		return len(m) == 1 && m[0].Size == 1 && m[0].HostID == uint32(id)
	}
	return !self(uidMap, os.Geteuid()) || !self(gidMap, os.Getegid())
}

func toSysMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

// writeMapsWithHelpers runs newuidmap and newgidmap for pid.
func writeMapsWithHelpers(pid int, uidMap, gidMap []specs.LinuxIDMapping) error {
	run := func(tool string, m []specs.LinuxIDMapping) error {
		args := []string{strconv.Itoa(pid)}
		for _, e := range m {
			args = append(args, fmt.Sprint(e.ContainerID), fmt.Sprint(e.HostID), fmt.Sprint(e.Size))
		}
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("newuidmap", uidMap); err != nil {
		return err
	}
	return run("newgidmap", gidMap)
}

// idMapped tells whether container id id is mapped by m.
func idMapped(m []specs.LinuxIDMapping, id uint32) bool {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return true
		}
	}
	return false
}
