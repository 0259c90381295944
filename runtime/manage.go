package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Info is a container with its current state, for ps.
type Info struct {
	*Container
	State *State
}

// List returns every container under root with its state, oldest first.
func List(root string) ([]Info, error) {
	all, err := loadAll(root)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(all))
	for _, c := range all {
		st, err := c.Status()
		if err != nil {
			return nil, err
		}
		out = append(out, Info{Container: c, State: st})
	}
	return out, nil
}

// findWithStatus finds container ref under root and reads its status.
func findWithStatus(root, ref string) (*Container, *State, error) {
	c, err := Find(root, ref)
	if err != nil {
		return nil, nil, err
	}
	st, err := c.Status()
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

// findSignalable is findWithStatus for a container whose processes can be
// signalled: created, running or paused.
func findSignalable(root, ref string) (*Container, *State, error) {
	c, st, err := findWithStatus(root, ref)
	if err != nil {
		return nil, nil, err
	}
	if st.Status != specs.StateRunning && st.Status != specs.StateCreated && st.Status != statePaused {
		return nil, nil, fmt.Errorf("container %s is not running (%s)", c.Name, st.Status)
	}
	return c, st, nil
}

// Kill sends sig to the container's process (pid 1 inside).
func Kill(root, ref string, sig syscall.Signal) error {
	c, st, err := findSignalable(root, ref)
	if err != nil {
		return err
	}
	if err := unix.Kill(st.Pid, sig); err != nil {
		return fmt.Errorf("kill container %s (pid %d): %w", c.Name, st.Pid, err)
	}
	return nil
}

// Remove deletes a container and its upper dir. A container that still
// runs is refused unless force, which kills it first; created (not yet
// started) containers are removed without force, as runc delete does.
func Remove(root, ref string, force bool) error {
	c, err := Find(root, ref)
	if err != nil {
		return err
	}
	unlock, err := lockContainers(root)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := c.Status()
	if err != nil {
		return err
	}
	if st.Status == specs.StateRunning && !force {
		return fmt.Errorf("container %s is running: stop it first or use rm -f", c.Name)
	}
	thawLeftover(c.ID)
	if st.Status == statePaused {
		if !force {
			return fmt.Errorf("container %s is paused: resume it first or use rm -f", c.Name)
		}
		unix.Kill(st.Pid, unix.SIGKILL) // held by the freezer until the thaw
		c.thawOwn()
	}
	if err := stopContainer(st); err != nil {
		return fmt.Errorf("remove container %s: %w", c.Name, err)
	}
	cleanupNetwork(c)
	removeFreezerDir(c.ID)
	if !c.Rootless {
		c.removeRecordedCgroups()
		removeCgroupDirs(c.ID)
	}
	return removeTree(c, c.dir)
}

// stopContainer kills the init (which ends the pid namespace) and waits
// for the supervisor to unmount and leave.
func stopContainer(st *State) error {
	if st.Pid != 0 && alive(st.Pid, st.PidStart) {
		unix.Kill(st.Pid, unix.SIGKILL)
	} else if st.Supervisor != 0 && alive(st.Supervisor, st.SupStart) {
		unix.Kill(st.Supervisor, unix.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for (alive(st.Pid, st.PidStart) || alive(st.Supervisor, st.SupStart)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(st.Supervisor, st.SupStart) {
		return fmt.Errorf("supervisor (pid %d) did not exit", st.Supervisor)
	}
	return nil
}

// removeTree deletes path. Rootless containers may hold files of other
// mapped users that we cannot delete from outside; those are deleted from
// inside an equal user namespace.
func removeTree(c *Container, path string) error {
	err := os.RemoveAll(path)
	if err == nil || !c.Rootless || os.Geteuid() == 0 || !(errors.Is(err, os.ErrPermission)) {
		if err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	if err := runStageInUserns(c.UIDMap, c.GIDMap, stageRmTree, stageArgs{Path: path}, nil, os.Stderr); err != nil {
		return fmt.Errorf("remove %s in the container's user namespace: %w", path, err)
	}
	return nil
}

// runStageInUserns runs a stage process in a new user namespace with the
// given maps, its output going to stdout and stderr, and waits for it.
func runStageInUserns(uidMap, gidMap []specs.LinuxIDMapping, stage string, a stageArgs, stdout, stderr io.Writer) error {
	a.Remap = needsHelper(uidMap, gidMap)
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer ctlW.Close()
	argv := stageCommand(stage, a)
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: stageEnv(), ExtraFiles: []*os.File{ctlR}, Stdout: stdout, Stderr: stderr}
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if !a.Remap {
		attr.UidMappings, attr.GidMappings = toSysMaps(uidMap), toSysMaps(gidMap)
	}
	cmd.SysProcAttr = attr
	err = cmd.Start()
	ctlR.Close()
	if err != nil {
		return err
	}
	if a.Remap {
		if err := writeMapsWithHelpers(cmd.Process.Pid, uidMap, gidMap); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
	}
	ctlW.Write([]byte("g"))
	return cmd.Wait()
}

// ImagesInUse maps the image IDs that containers under root were made from
// to those containers' names, so image removal can refuse to pull layers
// from under them.
func ImagesInUse(root string) (map[string][]string, error) {
	all, err := loadAll(root)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, c := range all {
		if c.Kind == KindImage {
			out[c.ImageID] = append(out[c.ImageID], c.Name)
		}
	}
	return out, nil
}

// LayersInUse returns the chain IDs (hex) of the store layers that
// containers under root have as lower layers: image removal must never
// delete them, even when their image goes.
func LayersInUse(root string) (map[string]bool, error) {
	all, err := loadAll(root)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range all {
		for _, l := range c.Lowers {
			// <root>/layers/<chain>/diff
			if filepath.Base(l) == "diff" {
				out[filepath.Base(filepath.Dir(l))] = true
			}
		}
	}
	return out, nil
}

// LeftoverContainerDirs lists (and with remove, deletes) the dirs under
// containers/ that have no container record: what an rm killed half-way
// through leaves. Creation makes the dir and its record under the
// containers lock, which this holds too, so no dir being created counts.
func LeftoverContainerDirs(root string, remove bool) ([]string, error) {
	if _, err := os.Stat(containersDir(root)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	unlock, err := lockContainers(root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ents, err := os.ReadDir(containersDir(root))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []string
	for _, e := range ents {
		dir := filepath.Join(containersDir(root), e.Name())
		if !e.IsDir() {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, recordFile)); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		out = append(out, dir)
		if remove {
			if err := os.RemoveAll(dir); err != nil {
				return out, fmt.Errorf("remove %s: %w", dir, err)
			}
		}
	}
	return out, nil
}
