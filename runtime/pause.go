package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runc's pause and resume: a container created with a linux.cgroupsPath
// is in a freezer cgroup of its own (it joins every v1 hierarchy, see
// cgroupspath.go), recorded at the handoff; pause freezes that cgroup and
// leaves it frozen, resume thaws it. (Pause, in freeze.go, is commit's:
// it freezes for the length of one call, wherever the container runs.)

// statePaused is runc's status of a frozen container (the runtime-spec
// has no such state; podman and runc's state use it).
const statePaused specs.ContainerState = "paused"

// PauseContainer freezes every process of container ref.
func PauseContainer(root, ref string) error { return setFrozen(root, ref, true) }

// ResumeContainer thaws a paused container.
func ResumeContainer(root, ref string) error { return setFrozen(root, ref, false) }

func setFrozen(root, ref string, frozen bool) error {
	c, err := Find(root, ref)
	if err != nil {
		return err
	}
	st, err := c.Status()
	if err != nil {
		return err
	}
	want := specs.StateRunning
	if !frozen {
		want = statePaused
	}
	if st.Status != want {
		return fmt.Errorf("container %s is %s, not %s", c.Name, st.Status, want)
	}
	fz := c.ownFreezer()
	if fz == nil {
		return fmt.Errorf("container %s has no freezer cgroup of its own (only containers created with a linux.cgroupsPath have one)", c.Name)
	}
	switch {
	case fz.v2 && frozen:
		return fz.setAndWait("cgroup.freeze", "1", "cgroup.events", "frozen 1")
	case fz.v2:
		return fz.setAndWait("cgroup.freeze", "0", "cgroup.events", "frozen 0")
	case frozen:
		return fz.setAndWait("freezer.state", "FROZEN", "freezer.state", "FROZEN")
	}
	return fz.setAndWait("freezer.state", "THAWED", "freezer.state", "THAWED")
}

// ownFreezer is the container's recorded cgroup in the freezer hierarchy,
// or nil.
func (c *Container) ownFreezer() *freezer {
	v1, v2 := freezerMounts()
	for _, d := range c.recordedCgroups() {
		if v1 != "" && strings.HasPrefix(d, v1+"/") {
			return &freezer{dir: d}
		}
	}
	for _, d := range c.recordedCgroups() {
		if _, err := os.Stat(filepath.Join(d, "cgroup.freeze")); err == nil && v2 != "" && strings.HasPrefix(d, v2+"/") {
			return &freezer{dir: d, v2: true}
		}
	}
	return nil
}

// frozen tells whether the container's own freezer cgroup is frozen.
func (c *Container) frozen() bool {
	fz := c.ownFreezer()
	if fz == nil {
		return false
	}
	if fz.v2 {
		data, _ := os.ReadFile(filepath.Join(fz.dir, "cgroup.events"))
		return strings.Contains(string(data), "frozen 1")
	}
	data, _ := os.ReadFile(filepath.Join(fz.dir, "freezer.state"))
	return strings.TrimSpace(string(data)) == "FROZEN"
}

// thawOwn thaws the container's own freezer cgroup, so that a delete's
// SIGKILL reaches processes the v1 freezer would hold.
func (c *Container) thawOwn() {
	if fz := c.ownFreezer(); fz != nil && c.frozen() {
		if fz.v2 {
			os.WriteFile(filepath.Join(fz.dir, "cgroup.freeze"), []byte("0"), 0)
		} else {
			os.WriteFile(filepath.Join(fz.dir, "freezer.state"), []byte("THAWED"), 0)
		}
	}
}
