package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Handoff is how `crun-lite create` of a bundle works, as runc's create
// does: the supervisor sets the container up, and once the init waits for
// `start` it writes the last cgroup limits, records the container's cgroup
// dirs and exits. The init, no longer tied to it by a parent-death signal,
// goes on alone: it is reparented to the nearest subreaper (conmon, under
// podman), which can then wait for it and read its exit status. A bundle
// container has no union to serve, so nothing else needs the supervisor;
// `delete` removes the cgroups (recorded in cgroups.json) and the state.

// errHandedOff ends the supervisor's follow loop after a handoff.
var errHandedOff = errors.New("handed off")

// cgroupsFile lists the container's cgroup dirs for delete and kill --all.
const cgroupsFile = "cgroups.json"

// handOff lets the waiting init go on without us.
func (s *supervisor) handOff() error {
	if err := s.cg.setLate(); err != nil {
		return err
	}
	if err := writeJSON(s.c.Path(cgroupsFile), s.cg.paths()); err != nil {
		return runnerErr("%v", err)
	}
	s.handedOff = true
	return nil
}

// paths lists the container's cgroup dirs.
func (cg *cgroups) paths() []string {
	if cg == nil {
		return []string{}
	}
	out := make([]string, 0, len(cg.dirs))
	for _, d := range cg.dirs {
		out = append(out, d.path)
	}
	return out
}

// recordedCgroups returns the cgroup dirs a handed-off container recorded.
func (c *Container) recordedCgroups() []string {
	var dirs []string
	if err := readJSON(c.Path(cgroupsFile), &dirs); err != nil {
		return nil
	}
	return dirs
}

// removeRecordedCgroups deletes the recorded cgroup dirs once the kernel
// has seen their processes go.
func (c *Container) removeRecordedCgroups() {
	for _, d := range c.recordedCgroups() {
		for i := 0; i < 50; i++ {
			err := os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// startFailure reads exec.fifo after the init's go-ahead byte until EOF: a
// handed-off init holds the fifo open until its exec closes it, and writes
// there why it failed before (a command that went away, a refused
// setrlimit, ...). An init with a supervisor closes it at once; its
// failures go to the supervisor.
func startFailure(fifo *os.File) error {
	data, _ := io.ReadAll(fifo)
	if len(data) == 0 {
		return nil
	}
	var m msg
	if err := json.Unmarshal(data, &m); err != nil || m.Type != msgError {
		return fmt.Errorf("the container init said %q", data)
	}
	return &Error{Code: m.Code, Err: errors.New(m.Msg)}
}

// handedOff tells whether the container's supervisor handed it off (it
// wrote cgroups.json then).
func (c *Container) handedOff() bool {
	_, err := os.Lstat(c.Path(cgroupsFile))
	return err == nil
}

// afterHandedOffStart finishes a start without a supervisor: openExecFifo
// returned once the process executed (startErr nil) or with why it did not
// (a startContainer hook, a command gone). As afterStart does with the
// supervisor's record: poststart hooks after the exec; after a failure
// with hooks in the config, the container is deleted and its poststop
// hooks run.
func afterHandedOffStart(root string, c *Container, st *State, startErr error, warn func(string)) error {
	spec, err := c.loadConfig()
	if err != nil {
		return err
	}
	if startErr == nil {
		runWarnHooks(spec, hookPoststart, hookState(c, spec, specs.StateRunning, st.Pid), warn)
		return nil
	}
	if hasHooks(spec, hookStartContainer, hookPoststart) {
		if rerr := Remove(root, c.ID, true); rerr != nil {
			warn(rerr.Error())
		}
		runPoststop(c, spec, warn)
	}
	return startErr
}
