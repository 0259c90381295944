package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// RuncState is what `runc state` and `runc list --format json` print for a
// container: the runtime-spec state with runc's rootfs, created and owner.
type RuncState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

// RuncStateOf returns the runc-style state of container id.
func RuncStateOf(root, id string) (*RuncState, error) {
	c, st, err := findWithStatus(root, id)
	if err != nil {
		return nil, err
	}
	return c.runcState(st), nil
}

// RuncStates returns the runc-style state of every container, by ID.
func RuncStates(root string) ([]*RuncState, error) {
	infos, err := List(root)
	if err != nil {
		return nil, err
	}
	out := make([]*RuncState, 0, len(infos))
	for _, in := range infos {
		out = append(out, in.Container.runcState(in.State))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (c *Container) runcState(st *State) *RuncState {
	oci := c.ociState(st)
	rs := &RuncState{OCIVersion: oci.Version, ID: oci.ID, Pid: oci.Pid, Status: string(oci.Status),
		Bundle: oci.Bundle, Created: c.Created, Annotations: oci.Annotations, Owner: ""}
	if spec, err := c.loadConfig(); err == nil && spec.Root != nil {
		rs.Rootfs = c.rootfs(spec)
	}
	if fi, err := os.Stat(c.dir); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			rs.Owner = ownerName(sys.Uid)
		}
	}
	return rs
}

// ownerName is the user name of uid, or the number.
func ownerName(uid uint32) string {
	data, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == strconv.FormatUint(uint64(uid), 10) {
			return f[0]
		}
	}
	return "#" + strconv.FormatUint(uint64(uid), 10)
}

// KillAll sends sig to every process of the container, as runc kill --all:
// those in its recorded cgroups, or with a pid namespace of its own, every
// process in that namespace. A container sharing our pid namespace without
// a cgroup of its own gets the signal on its init only.
func KillAll(root, ref string, sig syscall.Signal) error {
	c, st, err := findSignalable(root, ref)
	if err != nil {
		return err
	}
	pids := map[int]bool{st.Pid: true}
	dirs := c.recordedCgroups()
	for _, dir := range dirs {
		procs, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if err == nil {
			for p := range procs {
				pids[p] = true
			}
		}
	}
	if len(dirs) == 0 && c.ownsPidNamespace() {
		if ns, err := pidNamespace(st.Pid); err == nil {
			for _, p := range pidsInNamespace(ns) {
				pids[p] = true
			}
		}
	}
	for p := range pids {
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("kill container %s (pid %d): %w", c.Name, p, err)
		}
	}
	return nil
}

// ownsPidNamespace tells whether the container made its pid namespace
// (rather than sharing ours or joining another by path).
func (c *Container) ownsPidNamespace() bool {
	spec, err := c.loadConfig()
	if err != nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path == ""
		}
	}
	return false
}
