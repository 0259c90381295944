package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// containerEnv holds what the container-start workload needs, made once
// per run in <cache>/container.
type containerEnv struct {
	dir     string
	rootfs  string // busybox rootfs, the lower layer for overlay
	plain   string // runc bundle using rootfs directly (native)
	ovl     string // runc bundle whose rootfs is an overlay mount
	store   string // crun-lite's image store with busybox:latest
	runc    string
	podman  []string          // podman and its private store flags
	missing map[string]string // method kind -> why it cannot start containers
}

// prepareContainers builds the rootfs, the bundles and the image store.
// What cannot be had (runc, busybox-static) is recorded, not fatal.
func (e *env) prepareContainers() *containerEnv {
	c := &containerEnv{dir: filepath.Join(e.cache, "container"), missing: map[string]string{}}
	c.rootfs, c.plain, c.ovl, c.store = filepath.Join(c.dir, "rootfs"), filepath.Join(c.dir, "bundle-plain"),
		filepath.Join(c.dir, "bundle-overlay"), filepath.Join(c.dir, "store")
	bb, err := imagetest.FindBusybox()
	if err != nil {
		for _, k := range []string{"native", "overlay", "unionfsd"} {
			c.missing[k] = err.Error()
		}
		return c
	}
	c.runc, err = exec.LookPath("runc")
	if err != nil {
		c.missing["native"] = "runc not installed (apt-get install runc)"
		c.missing["overlay"] = c.missing["native"]
	} else if err := c.makeBundles(bb); err != nil {
		c.missing["native"], c.missing["overlay"] = err.Error(), err.Error()
	}
	if err := c.makeStore(e.crunLite); err != nil {
		c.missing["unionfsd"] = err.Error()
	}
	if err := c.preparePodman(); err != nil {
		c.missing["podman"] = err.Error()
	}
	return c
}

// preparePodman loads busybox into a private podman store and starts one
// container, so a podman that cannot run containers here is skipped (with
// its error) instead of failing every sample.
func (c *containerEnv) preparePodman() error {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return errors.New("podman not installed (apt-get install podman)")
	}
	root := filepath.Join(c.dir, "podman")
	c.podman = []string{bin, "--root", filepath.Join(root, "root"), "--runroot", filepath.Join(root, "run")}
	// podman bind-mounts its overlay dir onto itself: unmount it at exit.
	pending.add(func() error { unmount(filepath.Join(root, "root", "overlay")); return nil })
	if b, err := exec.Command(c.podman[0], append(c.podman[1:], "load", "-q", "-i", filepath.Join(c.dir, "busybox.tar"))...).CombinedOutput(); err != nil {
		return fmt.Errorf("podman load: %v: %s", err, oneLine(string(b)))
	}
	if err := c.startPodman(0); err != nil {
		return fmt.Errorf("podman cannot run containers here: %v", err)
	}
	return nil
}

func (c *containerEnv) startPodman(int) error {
	argv := append(c.podman[1:len(c.podman):len(c.podman)], "run", "--rm", "--network", "none", "busybox:latest", "true")
	if b, err := exec.Command(c.podman[0], argv...).CombinedOutput(); err != nil {
		return fmt.Errorf("podman run --rm busybox:latest true: %v: %s", err, oneLine(string(b)))
	}
	return nil
}

func (c *containerEnv) makeBundles(busybox string) error {
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(c.rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if out, err := exec.Command("cp", busybox, filepath.Join(c.rootfs, "bin/busybox")).CombinedOutput(); err != nil {
		return fmt.Errorf("cp %s: %v: %s", busybox, err, out)
	}
	for _, a := range imagetest.BusyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(c.rootfs, "bin", a)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	if err := c.writeBundle(c.plain, c.rootfs); err != nil {
		return err
	}
	return c.writeBundle(c.ovl, filepath.Join(c.ovl, "rootfs"))
}

// writeBundle writes runc's default spec, changed to run "true" without a
// terminal on a writable rootfs (as crun-lite's containers are).
func (c *containerEnv) writeBundle(dir, rootfs string) error {
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		return err
	}
	if out, err := exec.Command(c.runc, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec --bundle %s: %v: %s", dir, err, out)
	}
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	proc, _ := spec["process"].(map[string]any)
	root, _ := spec["root"].(map[string]any)
	if proc == nil || root == nil {
		return fmt.Errorf("%s: no process or root in runc's spec", p)
	}
	proc["terminal"], proc["args"] = false, []string{"true"}
	root["path"], root["readonly"] = rootfs, false
	b, _ = json.MarshalIndent(spec, "", "  ")
	return os.WriteFile(p, b, 0o644)
}

func (c *containerEnv) makeStore(crunLite string) error {
	if err := os.RemoveAll(c.store); err != nil {
		return err
	}
	if err := os.MkdirAll(c.store, 0o700); err != nil {
		return err
	}
	tar := filepath.Join(c.dir, "busybox.tar")
	if err := imagetest.WriteBusyboxImage(tar); err != nil {
		return err
	}
	if out, err := exec.Command(crunLite, "--root", c.store, "-q", "import", tar).CombinedOutput(); err != nil {
		return fmt.Errorf("crun-lite import %s: %v: %s", tar, err, oneLine(string(out)))
	}
	return nil
}

func (e *env) containerStart(in *instance) (float64, error) {
	c := e.containers
	if why := c.missing[in.m.kind]; why != "" {
		return 0, fmt.Errorf("cannot start containers: %s", why)
	}
	start := map[string]func(int) error{"native": c.startPlain, "overlay": c.startOverlay, "unionfsd": e.startCrunLite, "podman": c.startPodman}[in.m.kind]
	n := e.ds.Scale.ContainerStarts
	times := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		sec, err := timed(func() error { return start(i) })
		if err != nil {
			return sec, err
		}
		times = append(times, sec)
	}
	in.extra = map[string]float64{"container-start-p95": percentile(times, 95)}
	return percentile(times, 50), nil
}

// percentile is the nearest-rank percentile p of values.
func percentile(values []float64, p int) float64 {
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	k := (p*len(v) + 99) / 100 // ceil(p/100 * n), 1-based
	if k < 1 {
		k = 1
	}
	return v[k-1]
}

func (c *containerEnv) runcRun(bundle string, i int) error {
	id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
	out, err := exec.Command(c.runc, "--root", filepath.Join(c.dir, "runc-state"), "run", "--bundle", bundle, id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc run --bundle %s %s: %v: %s", bundle, id, err, oneLine(string(out)))
	}
	return nil
}

func (c *containerEnv) startPlain(i int) error { return c.runcRun(c.plain, i) }

// startOverlay does what a runtime does per container: a fresh upper, the
// overlay mount, run, unmount, and the upper removed.
func (c *containerEnv) startOverlay(i int) error {
	scratch := filepath.Join(c.dir, "overlay-scratch")
	upper, work, mnt := filepath.Join(scratch, "upper"), filepath.Join(scratch, "work"), filepath.Join(c.ovl, "rootfs")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + c.rootfs + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", mnt, err)
	}
	release := pending.add(func() error { return unmount(mnt) })
	err := c.runcRun(c.ovl, i)
	if uerr := release(); err == nil {
		err = uerr
	}
	if rerr := os.RemoveAll(scratch); err == nil {
		err = rerr
	}
	return err
}

func (e *env) startCrunLite(int) error {
	out, err := exec.Command(e.crunLite, "--root", e.containers.store, "-q", "run", "--rm", "busybox:latest", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("crun-lite run --rm busybox:latest true: %v: %s", err, oneLine(string(out)))
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return checkf("crun-lite run printed %q", s)
	}
	return nil
}
