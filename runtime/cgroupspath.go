package runtime

import (
	"os"
	"path/filepath"
	"strings"
)

// linux.cgroupsPath, as runc's cgroupfs driver reads it: an absolute path
// is taken from the root of each hierarchy (podman's
// /libpod_parent/libpod-<id>), a relative one from our own cgroup in it.
// Without it a container lives in crun-lite/<id>. With it the container
// joins every v1 hierarchy the host has, limits or not, as runc does, so
// that podman finds its processes, memory and pids where it looks.
// The systemd form slice:prefix:name needs a systemd cgroup driver, which
// crun-lite does not have.

// checkCgroupsPath returns why p cannot be used, or "".
func checkCgroupsPath(p string) string {
	if p == "" {
		return ""
	}
	if strings.Contains(p, ":") {
		return "the systemd form slice:prefix:name needs --systemd-cgroup, which crun-lite does not support (podman: use --cgroup-manager cgroupfs)"
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "a path with .. is not allowed"
		}
	}
	if c := filepath.Clean(p); c == "/" || c == "." {
		return "must name a cgroup below the hierarchy's root, not the root itself"
	}
	if strings.ContainsRune(p, 0) {
		return "a path with a NUL byte is not allowed"
	}
	return ""
}

// joinOnlyControllers are the v1 controllers a container with a cgroupsPath
// joins even without a limit in them.
var joinOnlyControllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
	"net_cls", "net_prio", "perf_event", "hugetlb"}

// dirFor is the container's dir in the hierarchy of ctrl: base is our own
// cgroup there, mnt the hierarchy's mount point.
func dirFor(cgroupsPath, id, base, mnt string) string {
	switch {
	case cgroupsPath == "":
		return filepath.Join(base, "crun-lite", id)
	case filepath.IsAbs(cgroupsPath):
		return filepath.Join(mnt, cgroupsPath)
	}
	return filepath.Join(base, cgroupsPath)
}

// initCpuset fills cpuset.cpus and cpuset.mems of dir and of its new
// ancestors below mnt from their parents: a v1 cpuset cgroup takes no
// process while they are empty.
func initCpuset(mnt, dir string) error {
	rel, err := filepath.Rel(mnt, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil
	}
	cur := mnt
	for _, part := range strings.Split(rel, "/") {
		parent := cur
		cur = filepath.Join(cur, part)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			have, err := os.ReadFile(filepath.Join(cur, f))
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(have)) != "" {
				continue
			}
			want, err := os.ReadFile(filepath.Join(parent, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(cur, f), want, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func isJoinOnly(ctrl string) bool {
	for _, c := range joinOnlyControllers {
		if c == ctrl {
			return true
		}
	}
	return false
}
