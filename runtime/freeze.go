package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/userns"
)

// Pausing a container (for commit, as podman does) freezes every process
// in its pid namespace with the cgroup freezer: the v1 freezer controller
// where the host mounts one, else cgroup v2's cgroup.freeze. Containers get
// no freezer cgroup at start, so Pause makes crun-lite/<id> in that
// hierarchy, moves the processes in, freezes it, and Thaw moves them back
// to where they were and removes it. A process forked while they move
// either is found by the next scan or inherits the new cgroup.

// Pause freezes the container ref under root until the returned thaw is
// called. A container that does not run needs no pause; its thaw does
// nothing.
func Pause(root, ref string) (thaw func() error, err error) {
	c, st, err := findWithStatus(root, ref)
	if err != nil {
		return nil, err
	}
	if st.Status != specs.StateRunning && st.Status != specs.StateCreated {
		return func() error { return nil }, nil
	}
	if os.Geteuid() != 0 || userns.Inside() {
		return nil, fmt.Errorf("pause container %s: freezing needs root (a cgroup freezer); commit with --pause=false", c.Name)
	}
	fz, err := newFreezer(c.ID)
	if err != nil {
		return nil, fmt.Errorf("pause container %s: %w", c.Name, err)
	}
	if err := fz.freeze(st.Pid); err != nil {
		fz.thaw()
		return nil, fmt.Errorf("pause container %s: %w", c.Name, err)
	}
	return fz.thaw, nil
}

// freezer is one freezer cgroup made for a pause.
type freezer struct {
	dir     string
	v2      bool
	created bool           // by us: thaw removes it (a v2 limits cgroup stays)
	origin  map[int]string // pid -> the cgroup.procs file it came from
}

// newFreezer picks the hierarchy and makes crun-lite/<id> in it.
func newFreezer(id string) (*freezer, error) {
	v1, v2 := freezerMounts()
	switch {
	case v1 != "":
		return newFreezerAt(filepath.Join(v1, "crun-lite", id), false)
	case v2 != "":
		return newFreezerAt(filepath.Join(v2, "crun-lite", id), true)
	}
	return nil, errors.New("no cgroup freezer: neither a v1 freezer hierarchy nor cgroup v2 is mounted; commit with --pause=false")
}

// newFreezerAt uses dir, a cgroup two levels below its hierarchy's mount.
// A dir that exists is used in place and kept: the container's own cgroup
// (v2 limits or device filter; a v1 freezer mounted together with the
// devices controller), or what a killed pause left, the container in it.
func newFreezerAt(dir string, v2 bool) (*freezer, error) {
	fz := &freezer{dir: dir, v2: v2, origin: map[int]string{}}
	if _, err := os.Stat(dir); err == nil {
		return fz, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create freezer cgroup: %w", err)
	}
	fz.created = true
	return fz, nil
}

// thawLeftover thaws container id if a pause killed before its thaw left
// it frozen: a process frozen by the v1 freezer does not even die of
// SIGKILL, so rm does this first. The processes stay in their cgroups
// (moving them out could drop other controllers' limits).
func thawLeftover(id string) {
	v1, v2 := freezerMounts()
	if v1 != "" {
		os.WriteFile(filepath.Join(v1, "crun-lite", id, "freezer.state"), []byte("THAWED"), 0)
	}
	if v2 != "" {
		os.WriteFile(filepath.Join(v2, "crun-lite", id, "cgroup.freeze"), []byte("0"), 0)
	}
}

// removeFreezerDir removes what a killed pause left of the container's v1
// freezer cgroup, once its processes are gone.
func removeFreezerDir(id string) {
	if v1, _ := freezerMounts(); v1 != "" {
		os.Remove(filepath.Join(v1, "crun-lite", id))
		os.Remove(filepath.Join(v1, "crun-lite"))
	}
}

// freeze moves the processes of init's pid namespace into the cgroup until
// a scan finds none outside, then freezes it and waits for the kernel to
// report it frozen.
func (fz *freezer) freeze(init int) error {
	ns, err := pidNamespace(init)
	if err != nil {
		return err
	}
	for round := 0; ; round++ {
		moved, err := fz.moveIn(ns)
		if err != nil {
			return err
		}
		if moved == 0 {
			break
		}
		if round == 50 {
			return errors.New("its processes keep forking faster than they can be moved into the freezer")
		}
	}
	if fz.v2 {
		return fz.setAndWait("cgroup.freeze", "1", "cgroup.events", "frozen 1")
	}
	return fz.setAndWait("freezer.state", "FROZEN", "freezer.state", "FROZEN")
}

// moveIn moves the processes of pid namespace ns that are not in the
// cgroup yet; it returns how many it moved.
func (fz *freezer) moveIn(ns uint64) (int, error) {
	procs := filepath.Join(fz.dir, "cgroup.procs")
	in, err := readPids(procs)
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, pid := range pidsInNamespace(ns) {
		if in[pid] {
			continue
		}
		from, err := fz.cgroupOf(pid)
		if err != nil {
			continue // gone
		}
		err = os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0)
		if errors.Is(err, syscall.ESRCH) {
			continue
		}
		if err != nil {
			return moved, fmt.Errorf("move pid %d into %s: %w", pid, fz.dir, err)
		}
		fz.origin[pid] = from
		moved++
	}
	return moved, nil
}

// cgroupOf is the cgroup.procs file of pid's cgroup in the freezer's hierarchy.
func (fz *freezer) cgroupOf(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	base := filepath.Dir(filepath.Dir(fz.dir)) // the hierarchy's mount point
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if fz.v2 && f[0] == "0" || !fz.v2 && hasController(f[1], "freezer") {
			return filepath.Join(base, f[2], "cgroup.procs"), nil
		}
	}
	return "", fmt.Errorf("pid %d: no freezer cgroup", pid)
}

// setAndWait writes value to file and polls until state contains want.
func (fz *freezer) setAndWait(file, value, state, want string) error {
	if err := os.WriteFile(filepath.Join(fz.dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("freeze %s: %w", fz.dir, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(fz.dir, state))
		if err != nil {
			return fmt.Errorf("freeze %s: %w", fz.dir, err)
		}
		if strings.Contains(string(data), want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("freeze %s: not frozen after 10s (%s)", fz.dir, strings.TrimSpace(string(data)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// thaw unfreezes, moves the processes back where they came from and
// removes the cgroup.
func (fz *freezer) thaw() error {
	var err error
	if fz.v2 {
		err = os.WriteFile(filepath.Join(fz.dir, "cgroup.freeze"), []byte("0"), 0)
	} else {
		err = os.WriteFile(filepath.Join(fz.dir, "freezer.state"), []byte("THAWED"), 0)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("thaw %s: %w", fz.dir, err)
	}
	for pid, to := range fz.origin {
		os.WriteFile(to, []byte(strconv.Itoa(pid)), 0) // ESRCH: it exited
	}
	if !fz.created {
		return nil
	}
	// Forked while frozen (or while moving): to the hierarchy's root.
	in, _ := readPids(filepath.Join(fz.dir, "cgroup.procs"))
	for pid := range in {
		os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(fz.dir)), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
	}
	for i := 0; i < 50; i++ {
		if err := os.Remove(fz.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Remove(filepath.Dir(fz.dir)) // crun-lite/, when no other container uses it
	return nil
}

// freezerMounts finds the root of the v1 freezer hierarchy and the cgroup2
// mount, "" for what the host lacks. Only a hierarchy mounted at its own
// root is usable: we address cgroups by their full path in it.
func freezerMounts() (v1, v2 string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 5 || len(qf) < 3 || pf[3] != "/" {
			continue
		}
		switch {
		case qf[0] == "cgroup2" && v2 == "":
			v2 = pf[4]
		case qf[0] == "cgroup" && v1 == "" && hasController(qf[2], "freezer"):
			v1 = pf[4]
		}
	}
	return v1, v2
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// pidNamespace is the inode of pid's pid namespace.
func pidNamespace(pid int) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/pid", &st); err != nil {
		return 0, fmt.Errorf("pid namespace of %d: %w", pid, err)
	}
	return st.Ino, nil
}

// pidsInNamespace lists the host pids of the processes in pid namespace
// ns or in any namespace nested in it: a container process that makes its
// own pid namespace (unshare -p) must be frozen too.
func pidsInNamespace(ns uint64) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if inPidNamespace(pid, ns) {
			out = append(out, pid)
		}
	}
	return out
}

// inPidNamespace tells whether pid's pid namespace is ns or below it,
// climbing with NS_GET_PARENT (which ends with EPERM at our own level).
func inPidNamespace(pid int, ns uint64) bool {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	for depth := 0; depth < 40; depth++ { // the kernel allows 32 levels
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			break
		}
		if st.Ino == ns {
			unix.Close(fd)
			return true
		}
		parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		unix.Close(fd)
		if err != nil {
			return false
		}
		fd = parent
	}
	unix.Close(fd)
	return false
}

// readPids reads a cgroup.procs file.
func readPids(path string) (map[int]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out[pid] = true
		}
	}
	return out, nil
}
