package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/unionfsd/unionfsd/internal/mountinfo"
	"github.com/unionfsd/unionfsd/internal/userns"
)

// Resource limits go to cgroup v2 when its hierarchy offers the controller,
// else to the cgroup v1 hierarchy of that controller (hybrid hosts bind
// most controllers to v1), else they are not enforced and the user is
// warned. Each container gets crun-lite/<id> below the root of the v2
// hierarchy, or below our own cgroup in each v1 hierarchy.

// cgroupSetting is one file to write.
type cgroupSetting struct {
	file, value string
	optional    bool // missing file (e.g. no swap accounting) is fine
	late        bool // written just before exec (pids: the Go init has threads)
}

// deviceFilterV2 applies the device rules where the host has no v1
// devices hierarchy: as an eBPF program on the container's cgroup v2 dir.
// Without cgroup v2 either, device rules a bundle asks for are refused; the
// default rules of an image container, whose process gets no CAP_MKNOD,
// are skipped.
func (cg *cgroups) deviceFilterV2(h *hierarchies, c *Container, spec *specs.Spec) error {
	if h.v2 == "" {
		if c.Kind == KindBundle && spec.Linux != nil && spec.Linux.Resources != nil && len(spec.Linux.Resources.Devices) > 0 {
			return runnerErr("linux.resources.devices: this host has no devices cgroup (v1) and no cgroup v2 to attach a device filter to")
		}
		return nil
	}
	dir := filepath.Join(h.v2, "crun-lite", c.ID)
	if err := cg.create(dir, nil); err != nil {
		return err
	}
	return attachDeviceFilter(dir, deviceRules(spec))
}

// cgroupWants lists, per controller, what the config asks for, in the
// file names of v2 and v1.
func cgroupWants(r *specs.LinuxResources) (v2, v1 map[string][]cgroupSetting, flags map[string]string) {
	v2, v1, flags = map[string][]cgroupSetting{}, map[string][]cgroupSetting{}, map[string]string{}
	if r == nil {
		return
	}
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		n := strconv.FormatInt(*r.Memory.Limit, 10)
		// No swap beyond the limit: the limit is what the process may use.
		v2["memory"] = []cgroupSetting{{file: "memory.max", value: n}, {file: "memory.swap.max", value: "0", optional: true}}
		v1["memory"] = []cgroupSetting{{file: "memory.limit_in_bytes", value: n}, {file: "memory.memsw.limit_in_bytes", value: n, optional: true}}
		flags["memory"] = "memory limit"
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
		n := strconv.FormatInt(*r.Pids.Limit, 10)
		v2["pids"] = []cgroupSetting{{file: "pids.max", value: n, late: true}}
		v1["pids"] = v2["pids"]
		flags["pids"] = "pids limit"
	}
	if r.CPU != nil && r.CPU.Quota != nil && *r.CPU.Quota > 0 {
		period := uint64(100000)
		if r.CPU.Period != nil && *r.CPU.Period > 0 {
			period = *r.CPU.Period
		}
		q, p := strconv.FormatInt(*r.CPU.Quota, 10), strconv.FormatUint(period, 10)
		v2["cpu"] = []cgroupSetting{{file: "cpu.max", value: q + " " + p}}
		v1["cpu"] = []cgroupSetting{{file: "cpu.cfs_period_us", value: p}, {file: "cpu.cfs_quota_us", value: q}}
		flags["cpu"] = "cpu quota"
	}
	if r.CPU != nil && r.CPU.Shares != nil && *r.CPU.Shares > 0 {
		sh := *r.CPU.Shares
		v2["cpu"] = append(v2["cpu"], cgroupSetting{file: "cpu.weight", value: strconv.FormatUint(sharesToWeight(sh), 10)})
		v1["cpu"] = append(v1["cpu"], cgroupSetting{file: "cpu.shares", value: strconv.FormatUint(sh, 10)})
		if flags["cpu"] == "" {
			flags["cpu"] = "cpu shares"
		}
	}
	if r.CPU != nil && (r.CPU.Cpus != "" || r.CPU.Mems != "") {
		var set []cgroupSetting
		if r.CPU.Mems != "" {
			set = append(set, cgroupSetting{file: "cpuset.mems", value: r.CPU.Mems})
		}
		if r.CPU.Cpus != "" {
			set = append(set, cgroupSetting{file: "cpuset.cpus", value: r.CPU.Cpus})
		}
		v2["cpuset"], v1["cpuset"] = set, set
		flags["cpuset"] = "cpu.cpus and cpu.mems"
	}
	return
}

// sharesToWeight maps cgroup v1 cpu.shares [2, 262144] onto cgroup v2
// cpu.weight [1, 10000] linearly, the conversion runc and crun use.
func sharesToWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// cgroups is the set of cgroup dirs one container uses.
type cgroups struct {
	dirs []cgroupDir
}

type cgroupDir struct {
	path     string
	settings []cgroupSetting
}

// hierarchies is what the host offers.
type hierarchies struct {
	v2     string            // cgroup2 mount point, "" if none
	v2Ctrl map[string]bool   // controllers the v2 root offers
	v1     map[string]string // controller -> our cgroup dir in its v1 hierarchy
	v1Mnt  map[string]string // controller -> its v1 hierarchy's root dir
	// cgPath is the config's linux.cgroupsPath (see cgroupspath.go).
	cgPath string
}

// setupCgroups creates the container's cgroups and writes its limits (all
// but the late ones). No limits, no cgroups. A limit that cannot be
// enforced (no controller for it, or a rootless container) is an error, as
// is one the kernel refuses: a container never runs without a limit it was
// given.
func setupCgroups(c *Container, spec *specs.Spec) (*cgroups, error) {
	return setupCgroupsIn(detectHierarchies(), c, spec)
}

// setupCgroupsIn is setupCgroups on the hierarchies h.
func setupCgroupsIn(h *hierarchies, c *Container, spec *specs.Spec) (*cgroups, error) {
	cg := &cgroups{}
	var res *specs.LinuxResources
	if spec.Linux != nil {
		res = spec.Linux.Resources
	}
	v2, v1, names := cgroupWants(res)
	if spec.Linux != nil && spec.Linux.CgroupsPath != "" && !userns.Inside() {
		h.cgPath = spec.Linux.CgroupsPath
		for _, ctrl := range joinOnlyControllers {
			if _, ok := h.v1[ctrl]; ok && names[ctrl] == "" && (h.v1Mnt[ctrl] != "" || !filepath.IsAbs(h.cgPath)) {
				names[ctrl] = "linux.cgroupsPath"
			}
		}
	}
	if userns.Inside() {
		// Bundles cannot get here with limits: validation refuses them.
		if len(names) > 0 {
			return nil, fmt.Errorf("%s: cannot be enforced for a rootless container (it needs root, or a cgroup v2 tree delegated by systemd)", joinNames(names))
		}
		return cg, nil
	}
	devs, err := deviceSettings(spec)
	if err != nil {
		return nil, err
	}
	v1["devices"], names["devices"] = devs, "device rules"
	for ctrl := range names {
		dir, settings, ok := h.place(c.ID, ctrl, v2, v1)
		if !ok && ctrl == "devices" {
			if err := cg.deviceFilterV2(h, c, spec); err != nil {
				cg.destroy()
				return nil, err
			}
			continue
		}
		if !ok {
			cg.destroy()
			return nil, fmt.Errorf("%s: cannot be enforced: cgroup controller %q is available neither in cgroup v2 nor v1", names[ctrl], ctrl)
		}
		if ctrl == "cpuset" && h.v1Mnt[ctrl] != "" {
			// The new dirs inherit their parents' cpus and mems first: the
			// config's must be a subset of the parent's, and a v1 cpuset
			// dir left empty takes no process.
			if err := cg.create(dir, nil); err != nil {
				cg.destroy()
				return nil, err
			}
			if err := initCpuset(h.v1Mnt[ctrl], dir); err != nil {
				cg.destroy()
				return nil, runnerErr("cgroup %s: cpuset: %v", dir, err)
			}
		}
		if err := cg.create(dir, settings); err != nil {
			cg.destroy()
			return nil, err
		}
	}
	return cg, nil
}

func joinNames(m map[string]string) string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// place picks the dir and settings for one controller.
func (h *hierarchies) place(id, ctrl string, v2, v1 map[string][]cgroupSetting) (string, []cgroupSetting, bool) {
	if h.v2 != "" && h.v2Ctrl[ctrl] {
		dir := dirFor(h.cgPath, id, h.v2, h.v2)
		if err := enableV2(h.v2, dir, ctrl); err == nil {
			return dir, v2[ctrl], true
		}
	}
	if base, ok := h.v1[ctrl]; ok && !(filepath.IsAbs(h.cgPath) && h.v1Mnt[ctrl] == "") {
		return dirFor(h.cgPath, id, base, h.v1Mnt[ctrl]), v1[ctrl], true
	}
	return "", nil, false
}

// enableV2 turns ctrl on for the children of the v2 root and of every
// ancestor of dir below it.
func enableV2(root, dir, ctrl string) error {
	rel, err := filepath.Rel(root, filepath.Dir(dir))
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup %s is outside %s", dir, root)
	}
	parents := []string{root}
	if rel != "." {
		cur := root
		for _, part := range strings.Split(rel, "/") {
			cur = filepath.Join(cur, part)
			parents = append(parents, cur)
		}
	}
	if err := os.MkdirAll(parents[len(parents)-1], 0o755); err != nil {
		return err
	}
	for _, d := range parents {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+"+ctrl), 0); err != nil {
			return err
		}
	}
	return nil
}

// create makes dir (v2 dirs may be shared by several controllers) and
// writes its early settings.
func (cg *cgroups) create(dir string, settings []cgroupSetting) error {
	for i := range cg.dirs {
		if cg.dirs[i].path == dir {
			cg.dirs[i].settings = append(cg.dirs[i].settings, settings...)
			return writeSettings(dir, settings, false)
		}
	}
	if err := mkdirCgroup(dir); err != nil {
		return runnerErr("create cgroup %s: %v", dir, err)
	}
	cg.dirs = append(cg.dirs, cgroupDir{path: dir, settings: settings})
	return writeSettings(dir, settings, false)
}

// mkdirCgroup makes dir and its parent crun-lite/. Another container's
// teardown removes that parent when it looks unused, which can happen
// between our two mkdirs: then we try again.
func mkdirCgroup(dir string) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = os.MkdirAll(dir, 0o755); !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return err
}

func writeSettings(dir string, settings []cgroupSetting, late bool) error {
	for _, s := range settings {
		if s.late != late {
			continue
		}
		p := filepath.Join(dir, s.file)
		err := os.WriteFile(p, []byte(s.value), 0)
		if err != nil && s.optional && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return runnerErr("cannot set cgroup limit %s=%s: %v", p, s.value, err)
		}
	}
	return nil
}

// add moves pid into every dir.
func (cg *cgroups) add(pid int) error {
	if cg == nil {
		return nil
	}
	for _, d := range cg.dirs {
		p := filepath.Join(d.path, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0); err != nil {
			return runnerErr("join cgroup %s: %v", d.path, err)
		}
	}
	return nil
}

// setLate writes the settings that wait until just before exec.
func (cg *cgroups) setLate() error {
	if cg == nil {
		return nil
	}
	for _, d := range cg.dirs {
		if err := writeSettings(d.path, d.settings, true); err != nil {
			return err
		}
	}
	return nil
}

// destroy removes the dirs once their processes are gone (the kernel may
// take a moment to notice).
func (cg *cgroups) destroy() {
	if cg == nil {
		return
	}
	for _, d := range cg.dirs {
		for i := 0; i < 50; i++ {
			err := os.Remove(d.path)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if parent := filepath.Dir(d.path); filepath.Base(parent) == "crun-lite" {
			os.Remove(parent) // when no other container uses it
		}
	}
	cg.dirs = nil
}

// removeCgroupDirs deletes the cgroups of container id wherever they may
// be: the supervisor normally does, but not when it was killed.
func removeCgroupDirs(id string) {
	h := detectHierarchies()
	bases := []string{}
	if h.v2 != "" {
		bases = append(bases, h.v2)
	}
	for _, b := range h.v1 {
		bases = append(bases, b)
	}
	for _, b := range bases {
		os.Remove(filepath.Join(b, "crun-lite", id))
		os.Remove(filepath.Join(b, "crun-lite"))
	}
}

// detectHierarchies reads /proc/self/mountinfo and /proc/self/cgroup.
func detectHierarchies() *hierarchies {
	h := &hierarchies{v2Ctrl: map[string]bool{}, v1: map[string]string{}, v1Mnt: map[string]string{}}
	own := ownCgroups()
	mounts, _ := mountinfo.Read()
	for _, m := range mounts {
		h.addMount(m, own)
	}
	if h.v2 != "" {
		data, _ := os.ReadFile(filepath.Join(h.v2, "cgroup.controllers"))
		for _, c := range strings.Fields(string(data)) {
			h.v2Ctrl[c] = true
		}
	}
	return h
}

// addMount notes a cgroup mount.
func (h *hierarchies) addMount(m mountinfo.Mount, own map[string]string) {
	root, mnt := m.Root, m.Point
	switch m.FSType {
	case "cgroup2":
		if h.v2 == "" {
			h.v2 = mnt
		}
	case "cgroup":
		for _, opt := range strings.Split(m.SuperOpts, ",") {
			path, ok := own[opt]
			if !ok || !isJoinOnly(opt) {
				continue
			}
			rel, err := filepath.Rel(root, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			h.v1[opt] = filepath.Join(mnt, rel)
			if root == "/" {
				// Absolute cgroupsPaths start here; not in a cgroup namespace.
				if h.v1Mnt == nil {
					h.v1Mnt = map[string]string{}
				}
				h.v1Mnt[opt] = mnt
			}
		}
	}
}

// ownCgroups maps each v1 controller to our cgroup path in its hierarchy.
func ownCgroups() map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || f[1] == "" {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out
}
