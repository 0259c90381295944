package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// BundleOptions are what create and run -b need besides the ID.
type BundleOptions struct {
	Bundle string // the bundle dir (config.json and, usually, rootfs/)
	Stdio  Stdio
	Warn   func(string)
	// ConsoleSocket (create): a connected unix socket the pty master of a
	// process.terminal container is sent over, as runc's --console-socket.
	ConsoleSocket *os.File
	// NoNewKeyring (create): the container keeps the caller's session keyring.
	NoNewKeyring bool
}

// CreateBundle creates a container from an OCI bundle, runc-style: the
// init is set up and waits for Start; stdio goes to the container.
func CreateBundle(root, id string, o BundleOptions) error {
	c, spec, err := createFromBundle(root, id, o, true)
	if err != nil {
		return err
	}
	lo := launchOpts{c: c, spec: spec, stdio: o.Stdio, detach: true, warn: o.Warn,
		consoleSocket: o.ConsoleSocket, handoff: true, newKeyring: !o.NoNewKeyring}
	if _, err := launch(lo); err != nil {
		os.RemoveAll(c.dir)
		runPoststop(c, spec, o.Warn)
		return err
	}
	return nil
}

// RunBundle creates and starts a bundle container in the foreground and
// deletes it when it ends, as `runc run` does. It returns the exit status.
func RunBundle(root, id string, o BundleOptions) (int, error) {
	c, spec, err := createFromBundle(root, id, o, false)
	if err != nil {
		return ExitCodeOf(err), err
	}
	code, err := launch(launchOpts{c: c, spec: spec, stdio: o.Stdio, warn: o.Warn})
	removeTree(c, c.dir)
	runPoststop(c, spec, o.Warn)
	return code, err
}

// createFromBundle reads and checks the bundle's config and creates the
// container dir (with exec.fifo for create).
func createFromBundle(root, id string, o BundleOptions, withFifo bool) (*Container, *specs.Spec, error) {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, nil, runnerErr("bundle %s: %v", o.Bundle, err)
	}
	spec, err := readBundleSpec(bundle)
	if err != nil {
		return nil, nil, err
	}
	if withFifo && spec.Process.Terminal && o.ConsoleSocket == nil {
		return nil, nil, runnerErr("%s: process.terminal is true: create needs --console-socket to hand the terminal to (or use crun-lite run -b, or set terminal to false)", filepath.Join(bundle, "config.json"))
	}
	c := &Container{ID: id, Name: id, Kind: KindBundle, Bundle: bundle, Command: spec.Process.Args}
	if hasNamespace(spec, specs.UserNamespace) {
		c.Rootless, c.UIDMap, c.GIDMap = true, spec.Linux.UIDMappings, spec.Linux.GIDMappings
	} else if os.Geteuid() != 0 {
		return nil, nil, runnerErr("%s: a non-root user needs a user namespace in the config (crun-lite spec --rootless)", filepath.Join(bundle, "config.json"))
	}
	if err := create(root, c); err != nil {
		return nil, nil, err
	}
	if err := c.prepareBundle(spec, withFifo); err != nil {
		os.RemoveAll(c.dir)
		return nil, nil, err
	}
	return c, spec, nil
}

// readBundleSpec loads BUNDLE/config.json and checks it (see
// decodeBundleConfig) and its root.
func readBundleSpec(bundle string) (*specs.Spec, error) {
	p := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, runnerErr("bundle config %s: %v", p, unwrapPath(err))
	}
	spec, err := decodeBundleConfig(data, p)
	if err != nil {
		return nil, err
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return nil, runnerErr("%s: root.path %s is not a directory", p, rootfs)
	}
	return spec, nil
}

// prepareBundle writes the config copy, the initial state and exec.fifo.
func (c *Container) prepareBundle(spec *specs.Spec, withFifo bool) error {
	if err := writeJSON(c.Path(configFile), spec); err != nil {
		return err
	}
	if withFifo {
		if err := unix.Mkfifo(c.Path(execFifoName), 0o600); err != nil {
			return runnerErr("create %s: %v", c.Path(execFifoName), err)
		}
	}
	return c.writeState(&State{Status: specs.StateCreating})
}

// Start starts the command of a created container and runs its poststart
// hooks (their failures go to warn).
func Start(root, id string, warn func(string)) error {
	c, err := Find(root, id)
	if err != nil {
		return err
	}
	st, err := c.Status()
	if err != nil {
		return err
	}
	if st.Status != specs.StateCreated {
		return fmt.Errorf("container %s is %s, not created: cannot start it", c.Name, st.Status)
	}
	err = openExecFifo(c, st)
	if c.handedOff() {
		return afterHandedOffStart(root, c, st, err, warn)
	}
	if err != nil {
		return err
	}
	return afterStart(root, c, warn)
}

// openExecFifo opens exec.fifo for reading, which lets the blocked init
// go on, and removes it, which marks the container running. The open
// blocks until the init is there; if the init dies first we give up.
func openExecFifo(c *Container, st *State) error {
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(c.Path(execFifoName), os.O_RDONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		b := make([]byte, 1)
		if n, _ := f.Read(b); n != 1 {
			done <- errors.New("the container init exited before it could start")
			return
		}
		done <- startFailure(f)
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("start container %s: %w", c.Name, err)
			}
			return os.Remove(c.Path(execFifoName))
		case <-time.After(100 * time.Millisecond):
			if alive(st.Pid, st.PidStart) {
				continue
			}
			// What it wrote before it died says more.
			select {
			case err := <-done:
				if err != nil {
					return fmt.Errorf("start container %s: %w", c.Name, err)
				}
				return os.Remove(c.Path(execFifoName)) // it ran, and ended already
			case <-time.After(time.Second):
			}
			return fmt.Errorf("start container %s: its init is gone", c.Name)
		}
	}
}

// StateOf returns the runtime-spec state of a container.
func StateOf(root, id string) (*specs.State, error) {
	c, st, err := findWithStatus(root, id)
	if err != nil {
		return nil, err
	}
	return c.ociState(st), nil
}
