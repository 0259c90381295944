package runtime

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// State is state.json. Only the supervisor writes it once it runs; the
// status read back is corrected by looking at the processes (see Status),
// so a killed supervisor never leaves a container "running" forever.
type State struct {
	Status specs.ContainerState `json:"status"`
	// Pid is the container init's pid in the host's pid namespace; PidStart
	// its start time in clock ticks, to tell it from a reused pid.
	Pid        int    `json:"pid,omitempty"`
	PidStart   uint64 `json:"pidStart,omitempty"`
	Supervisor int    `json:"supervisor,omitempty"`
	SupStart   uint64 `json:"supervisorStart,omitempty"`
	// ExitCode is the shell-style status: the exit code, or 128+N after
	// signal N. Nil while running or when the supervisor died first.
	ExitCode *int      `json:"exitCode,omitempty"`
	Started  time.Time `json:"started,omitempty"`
	Finished time.Time `json:"finished,omitempty"`
	// Failure is why the container ended without (or before) its
	// process, for a `start` that no longer has the supervisor's ear.
	Failure string `json:"failure,omitempty"`
}

func (c *Container) readState() (*State, error) {
	st := &State{}
	err := readJSON(c.Path(stateFile), st)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Status: specs.StateCreating}, nil
	}
	return st, err
}

func (c *Container) writeState(st *State) error { return writeJSON(c.Path(stateFile), st) }

// updateState applies change to the stored state.
func (c *Container) updateState(change func(*State)) error {
	st, err := c.readState()
	if err != nil {
		return err
	}
	change(st)
	return c.writeState(st)
}

// Status returns the stored state with its status checked against the
// processes: a dead init means stopped; a live one waiting on its exec
// fifo means created.
func (c *Container) Status() (*State, error) {
	st, err := c.readState()
	if err != nil {
		return nil, err
	}
	if st.Status == specs.StateStopped {
		return st, nil
	}
	switch {
	case st.Pid != 0 && alive(st.Pid, st.PidStart):
		st.Status = specs.StateRunning
		if _, err := os.Lstat(c.Path(execFifoName)); err == nil {
			st.Status = specs.StateCreated
		} else if c.frozen() {
			st.Status = statePaused
		}
	case st.Pid != 0:
		st.Status = specs.StateStopped
	case st.Supervisor != 0 && alive(st.Supervisor, st.SupStart):
		st.Status = specs.StateCreating
	default:
		st.Status = specs.StateStopped
	}
	return st, nil
}

// procStat returns the start time (clock ticks after boot) and the state
// letter of a process, from /proc/PID/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces or ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0][0], err
}

// alive tells whether pid still runs and is the process that started at
// start (0: any). Zombies count as dead.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	got, state, err := procStat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	return start == 0 || got == start
}

// ociState is the runtime-spec state of the container.
func (c *Container) ociState(st *State) *specs.State {
	out := &specs.State{Version: specs.Version, ID: c.ID, Status: st.Status, Bundle: c.Bundle}
	if st.Status == specs.StateCreated || st.Status == specs.StateRunning {
		out.Pid = st.Pid
	}
	if out.Bundle == "" {
		out.Bundle = c.dir
	}
	if spec, err := c.loadConfig(); err == nil {
		out.Annotations = spec.Annotations
	}
	return out
}
