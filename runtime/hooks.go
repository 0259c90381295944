package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// OCI hooks (runtime-spec config.md "POSIX-platform Hooks", runtime.md
// "Lifecycle"). Who runs which kind, and when:
//
//   - prestart, createRuntime: the supervisor, in the runtime namespace
//     (the namespaces the container's are made from: the supervisor's),
//     when the init has done its mounts and waits before pivot_root
//     (msgHooks, answered with "h"). Status "created", pid the init's.
//   - createContainer: the init, right after that, in the container's
//     namespaces, still before pivot_root. Status "created", pid as the
//     container sees it.
//
// "created" for the hooks of create, not runc's "creating": the spec's
// state defines created as "after step 2" (the environment is made) and
// these are steps 3 to 5; `state` of a container being created says
// created then too (the init lives and exec.fifo is there), and the
// runtime-tools suite (hooks_stdin) expects it.
//   - startContainer: the init, after `start` and after it dropped its
//     privileges, right before it execs the process (as runc does).
//     Status "created".
//   - poststart: the front end (`start`, `run -b`) once the process has
//     executed. Status "running".
//   - poststop: the front end (`delete`, `run -b`, a failed create) once
//     the container is gone. Status "stopped".
//
// A failing hook of the first four kinds fails create (or start): the
// container is stopped and deleted and the poststop hooks run (lifecycle
// step 12 and 13). poststart and poststop failures are warnings.

// Hook kinds, as config.json names them.
const (
	hookPrestart        = "prestart"
	hookCreateRuntime   = "createRuntime"
	hookCreateContainer = "createContainer"
	hookStartContainer  = "startContainer"
	hookPoststart       = "poststart"
	hookPoststop        = "poststop"
)

// msgHooks: the init is set up up to pivot_root and waits for "h" while
// the supervisor runs the prestart and createRuntime hooks.
const msgHooks = "hooks"

// hookKinds are the kinds in lifecycle order.
var hookKinds = []string{hookPrestart, hookCreateRuntime, hookCreateContainer, hookStartContainer, hookPoststart, hookPoststop}

// hooksOf returns the spec's hooks of one kind.
func hooksOf(spec *specs.Spec, kind string) []specs.Hook {
	h := spec.Hooks
	if h == nil {
		return nil
	}
	switch kind {
	case hookPrestart:
		return h.Prestart //nolint:staticcheck // deprecated, still run
	case hookCreateRuntime:
		return h.CreateRuntime
	case hookCreateContainer:
		return h.CreateContainer
	case hookStartContainer:
		return h.StartContainer
	case hookPoststart:
		return h.Poststart
	case hookPoststop:
		return h.Poststop
	}
	return nil
}

func hasHooks(spec *specs.Spec, kinds ...string) bool {
	for _, k := range kinds {
		if len(hooksOf(spec, k)) > 0 {
			return true
		}
	}
	return false
}

// checkHooks checks every hook's fields: path absolute, timeout positive.
func checkHooks(spec *specs.Spec) (string, string) {
	for _, kind := range hookKinds {
		for i, h := range hooksOf(spec, kind) {
			field := fmt.Sprintf("hooks.%s[%d]", kind, i)
			switch {
			case h.Path == "":
				return field + ".path", "is missing"
			case !filepath.IsAbs(h.Path):
				return field + ".path", fmt.Sprintf("%q is not an absolute path", h.Path)
			case h.Timeout != nil && *h.Timeout <= 0:
				return field + ".timeout", fmt.Sprintf("%d: must be greater than zero", *h.Timeout)
			}
		}
	}
	return "", ""
}

// hookState is the state handed to a hook on stdin.
func hookState(c *Container, spec *specs.Spec, status specs.ContainerState, pid int) *specs.State {
	return &specs.State{Version: specs.Version, ID: c.ID, Status: status, Pid: pid, Bundle: c.Bundle, Annotations: spec.Annotations}
}

// runHooks runs the hooks of one kind in order and stops at the first
// failure, which names the hook: "hooks.createRuntime[0] /bin/false: exit
// status 1".
func runHooks(spec *specs.Spec, kind string, st *specs.State) error {
	hooks := hooksOf(spec, kind)
	if len(hooks) == 0 {
		return nil
	}
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			return runnerErr("hooks.%s[%d] %s: %v", kind, i, h.Path, err)
		}
	}
	return nil
}

// runWarnHooks runs hooks whose failure is only a warning (poststart,
// poststop): every hook runs, each failure is one warning.
func runWarnHooks(spec *specs.Spec, kind string, st *specs.State, warn func(string)) {
	hooks := hooksOf(spec, kind)
	if warn == nil {
		warn = func(string) {}
	}
	state, _ := json.Marshal(st)
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			warn(fmt.Sprintf("hooks.%s[%d] %s: %v", kind, i, h.Path, err))
		}
	}
}

// hookStderrMax is how much of a hook's stderr is kept for its error.
const hookStderrMax = 4096

// runHook runs one hook with state on stdin, its env only (none when
// unset), in a process group of its own that a timeout kills whole.
func runHook(h specs.Hook, state []byte) error {
	var stderr tailBuffer
	cmd := &exec.Cmd{Path: h.Path, Args: h.Args, Env: h.Env, Stdin: bytes.NewReader(state), Stderr: &stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	// A grandchild holding the stderr pipe must not keep us waiting.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return errnoOf(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if h.Timeout != nil {
		t := time.NewTimer(time.Duration(*h.Timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-done:
		if err != nil {
			return withStderr(err, stderr.lastLine())
		}
		return nil
	case <-timeout:
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-done
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
}

func withStderr(err error, line string) error {
	if line == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, line)
}

// tailBuffer keeps the last hookStderrMax bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > hookStderrMax {
		t.b = t.b[len(t.b)-hookStderrMax:]
	}
	return len(p), nil
}

// lastLine is the last non-empty line written, for a one-line error.
func (t *tailBuffer) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// --- the init's side ---

// beforePivot runs in the init between its mounts and pivot_root: it lets
// the supervisor run the prestart and createRuntime hooks, then runs the
// createContainer hooks itself.
func (in *containerInit) beforePivot() error {
	if hasHooks(in.spec, hookPrestart, hookCreateRuntime) {
		in.rep.send(msg{Type: msgHooks})
		if err := in.await('h'); err != nil {
			return err
		}
	}
	return runHooks(in.spec, hookCreateContainer, hookState(in.c, in.spec, specs.StateCreated, os.Getpid()))
}

// runStartHooks runs the startContainer hooks, the last thing before the
// exec: privileges are dropped, the working dir is the process's.
func (in *containerInit) runStartHooks() error {
	return runHooks(in.spec, hookStartContainer, hookState(in.c, in.spec, specs.StateCreated, os.Getpid()))
}

// runBeforePivot calls the setup's beforePivot when there is one.
func (r *rootfsSetup) runBeforePivot() error {
	if r.beforePivot == nil {
		return nil
	}
	return r.beforePivot()
}

// --- the supervisor's side ---

// runCreateHooks runs the prestart and createRuntime hooks for the init
// waiting before pivot_root, and lets it go on.
func (s *supervisor) runCreateHooks() error {
	st := hookState(s.c, s.spec, specs.StateCreated, s.init.Process.Pid)
	for _, kind := range []string{hookPrestart, hookCreateRuntime} {
		if err := runHooks(s.spec, kind, st); err != nil {
			return err
		}
	}
	if _, err := s.syncW.Write([]byte("h")); err != nil {
		return runnerErr("container init: %v", err)
	}
	return nil
}

// execDone records that the init has executed the process: its status
// pipe, close-on-exec, reached EOF without a failure reported.
func (s *supervisor) execDone() {
	if !s.execing {
		return
	}
	s.execing = false
	s.c.updateState(func(st *State) { st.Status, st.Started = specs.StateRunning, time.Now().UTC() })
	s.rep.send(msg{Type: msgRunning})
}

// recordFailure keeps why the container ended for a later `start`.
func (s *supervisor) recordFailure(err error) {
	if s.c != nil {
		s.c.updateState(func(st *State) { st.Failure = err.Error() })
	}
}

// --- the front ends' side ---

// poststart runs the poststart hooks of a `run -b` once the process runs.
func (f *frontEnd) poststart() {
	if f.spec != nil {
		runWarnHooks(f.spec, hookPoststart, hookState(f.c, f.spec, specs.StateRunning, f.pid), f.warn)
	}
}

// runPoststop runs the poststop hooks of a container that is gone.
func runPoststop(c *Container, spec *specs.Spec, warn func(string)) {
	if spec != nil {
		runWarnHooks(spec, hookPoststop, hookState(c, spec, specs.StateStopped, 0), warn)
	}
}

// afterStart follows a started container with startContainer or
// poststart hooks until its process has executed, then runs the poststart
// hooks. When the init failed instead (a startContainer hook), the
// container is deleted, its poststop hooks run, and the failure returned.
func afterStart(root string, c *Container, warn func(string)) error {
	spec, err := c.loadConfig()
	if err != nil || !hasHooks(spec, hookStartContainer, hookPoststart) {
		return err
	}
	// Only the supervisor's record tells "executed" from "failed before":
	// it writes Failure, or Started, before it marks the container stopped.
	for {
		stored, err := c.readState()
		if err != nil {
			return err
		}
		switch {
		case stored.Failure != "":
			if err := waitStopped(c); err != nil {
				return err
			}
			err := &Error{Code: ExitRunner, Err: errors.New(stored.Failure)}
			if rerr := Remove(root, c.ID, true); rerr != nil {
				warn(rerr.Error())
			}
			runPoststop(c, spec, warn)
			return err
		case !stored.Started.IsZero() || stored.Status == specs.StateStopped:
			// Executed (it may have ended already: it still ran).
			runWarnHooks(spec, hookPoststart, hookState(c, spec, specs.StateRunning, stored.Pid), warn)
			return nil
		case !alive(stored.Supervisor, stored.SupStart):
			return fmt.Errorf("start container %s: its supervisor died", c.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStopped waits until the supervisor has torn the container down.
func waitStopped(c *Container) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.readState()
		if err != nil {
			return err
		}
		if st.Status == specs.StateStopped || !alive(st.Supervisor, st.SupStart) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s did not stop", c.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Delete removes a container as Remove does, then runs its poststop
// hooks (`crun-lite delete`).
func Delete(root, ref string, force bool, warn func(string)) error {
	c, err := Find(root, ref)
	if err != nil {
		return err
	}
	spec, _ := c.loadConfig()
	if err := Remove(root, ref, force); err != nil {
		return err
	}
	runPoststop(c, spec, warn)
	return nil
}
