package podman

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPodmanCrunLite drives podman with both parts of this project:
// unionfsd as containers-storage's mount_program and crun-lite as the OCI
// runtime (podman --runtime), through conmon as podman always does: run
// --rm with an exit code, run -d then stop then rm, run -t with a tty, and
// commit.
func TestPodmanCrunLite(t *testing.T) {
	requirePodman(t)
	e := newEnv(t, nil, unionfsdBin)
	e.containersConf = writeContainersConf(t, e)
	e.requireRunnable() // with podman's default runtime
	rt := crunLiteRuntime(t, e)
	tar := filepath.Join(e.base, "image.tar")
	writeTestImage(t, tar)
	e.must("load", "-i", tar)
	c := &crunLitePodman{e: e, runtime: rt}

	t.Run("run --rm exit code", c.runRm)
	t.Run("run -d stop rm", c.detached)
	t.Run("run -t", c.tty)
	t.Run("commit", c.commit)
	t.Run("pod", c.pod)

	// crun-lite kept nothing: no container record, no cgroup of podman's.
	if ids := rt.containers(); len(ids) != 0 {
		t.Errorf("crun-lite still lists containers %v after podman removed its own", ids)
	}
	for _, id := range c.ids {
		for _, ctrl := range []string{"pids", "memory", "devices", "cpu"} {
			dir := filepath.Join("/sys/fs/cgroup", ctrl, "libpod_parent", "libpod-"+id)
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("cgroup %s left behind", dir)
				unix.Rmdir(dir)
			}
		}
	}
}

// writeContainersConf writes podman's containers.conf: no default
// ulimits (this machine refuses the container's setrlimit of podman's
// defaults), and crun-lite among the runtimes that take --log-format=json,
// so podman reads a failed create's error from crun-lite's log.
func writeContainersConf(t *testing.T, e *env) string {
	p := filepath.Join(e.base, "containers.conf")
	conf := "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime_supports_json = [\"crun-lite\", \"runc\", \"crun\"]\n"
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// crunLite is the runtime podman is given: a script named crun-lite that
// records its argv and runs the crun-lite under test with a store under
// the test's dir. (podman 4.3 runs its cleanup, and with it `delete`,
// without the --runtime-flag options it was given; a wrapper keeps --root
// on every call.)
type crunLite struct {
	path, root, calls string
}

func crunLiteRuntime(t *testing.T, e *env) *crunLite {
	dir := filepath.Join(e.base, "runtime")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rt := &crunLite{path: filepath.Join(dir, "crun-lite"), root: filepath.Join(e.base, "crun-lite-root"),
		calls: filepath.Join(e.base, "runtime-calls")}
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q --root %q \"$@\"\n", rt.calls, crunLiteBin, rt.root)
	if err := os.WriteFile(rt.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return rt
}

// containers lists the IDs crun-lite knows.
func (rt *crunLite) containers() []string {
	ents, _ := os.ReadDir(filepath.Join(rt.root, "containers"))
	var out []string
	for _, d := range ents {
		if d.IsDir() {
			out = append(out, d.Name())
		}
	}
	return out
}

// called tells whether crun-lite was called with a command line holding all of words.
func (rt *crunLite) called(words ...string) bool {
	data, _ := os.ReadFile(rt.calls)
	for _, line := range strings.Split(string(data), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all && line != "" {
			return true
		}
	}
	return false
}

type crunLitePodman struct {
	e       *env
	runtime *crunLite
	ids     []string // podman's container IDs, for the cgroup check
}

// podman runs podman with crun-lite as its runtime.
func (c *crunLitePodman) podman(t *testing.T, args ...string) result {
	t.Helper()
	c.e.t = t
	return c.e.podman(append([]string{"--runtime", c.runtime.path}, args...)...)
}

func (c *crunLitePodman) must(t *testing.T, args ...string) string {
	t.Helper()
	r := c.podman(t, args...)
	if r.code != 0 {
		t.Fatalf("podman %s: %v", strings.Join(args, " "), r)
	}
	return r.out
}

// run flags: no network, local images only.
var crunLiteRunFlags = []string{"--network", "none", "--pull", "never"}

func (c *crunLitePodman) run(t *testing.T, args ...string) result {
	t.Helper()
	return c.podman(t, append(append([]string{"run"}, crunLiteRunFlags...), args...)...)
}

// noteID records the container's ID for the cgroup check.
func (c *crunLitePodman) noteID(t *testing.T, name string) {
	t.Helper()
	c.ids = append(c.ids, strings.TrimSpace(c.must(t, "inspect", "--format", "{{.Id}}", name)))
}

// runRm: the container's stdout, stderr and exit code come back through
// conmon; its root is the unionfsd mount.
func (c *crunLitePodman) runRm(t *testing.T) {
	r := c.run(t, "--rm", imageRef, "sh", "-c", `grep ' / ' /proc/mounts; cat /data/keep; echo to-stderr >&2; exit 3`)
	if r.code != 3 {
		t.Fatalf("run --rm ... exit 3: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "fuse.unionfsd") || lines[1] != "keep" {
		t.Errorf("run --rm printed %q, want the unionfsd root and keep", r.out)
	}
	if !strings.Contains(r.err, "to-stderr") {
		t.Errorf("the container's stderr is not podman's: %q", r.err)
	}
	if !c.runtime.called("create", "--bundle", "--pid-file", "--log-format=json") || !c.runtime.called("start") ||
		!c.runtime.called("delete", "--force") {
		data, _ := os.ReadFile(c.runtime.calls)
		t.Errorf("podman did not create, start and delete through crun-lite; its calls:\n%s", data)
	}
	// A command that does not exist: create fails, and podman reports
	// crun-lite's error from the JSON log.
	r = c.run(t, "--rm", imageRef, "/no/such/command")
	if r.code != 127 || !strings.Contains(r.err, "/no/such/command") {
		t.Errorf("run of a missing command: %v", r)
	}
}

// detached: run -d, then podman stop (SIGTERM through crun-lite kill,
// which the container traps and exits 7), then rm.
func (c *crunLitePodman) detached(t *testing.T) {
	c.must(t, append(append([]string{"run", "-d", "--name", "d1"}, crunLiteRunFlags...), imageRef, "sh", "-c",
		`trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`)...)
	c.noteID(t, "d1")
	if !eventually(10*time.Second, func() bool { return strings.Contains(c.podman(t, "logs", "d1").out, "ready") }) {
		t.Fatalf("d1 never printed ready: %v", c.podman(t, "logs", "d1"))
	}
	if st := strings.TrimSpace(c.must(t, "inspect", "--format", "{{.State.Status}}", "d1")); st != "running" {
		t.Errorf("d1 is %s, want running", st)
	}
	c.afterStart(t, "d1")
	c.must(t, "pause", "d1")
	if st := strings.TrimSpace(c.must(t, "inspect", "--format", "{{.State.Status}}", "d1")); st != "paused" {
		t.Errorf("d1 is %s after pause, want paused", st)
	}
	c.must(t, "unpause", "d1")
	if !c.runtime.called("pause") || !c.runtime.called("resume") {
		t.Errorf("podman pause and unpause did not go through crun-lite pause and resume")
	}
	c.must(t, "stop", "-t", "10", "d1")
	if code := strings.TrimSpace(c.must(t, "inspect", "--format", "{{.State.ExitCode}}", "d1")); code != "7" {
		t.Errorf("d1 exited %s after stop, want 7 (its TERM trap)", code)
	}
	if out := c.must(t, "logs", "d1"); !strings.Contains(out, "got-term") {
		t.Errorf("d1's log lacks got-term: %q", out)
	}
	if !c.runtime.called("kill", "15") {
		t.Errorf("podman stop did not go through crun-lite kill ID 15")
	}
	c.must(t, "rm", "d1")
	if r := c.podman(t, "inspect", "d1"); r.code == 0 {
		t.Errorf("d1 still exists after rm")
	}
}

// afterStart is where checks on a running container go: top, and exec
// (conmon calls crun-lite exec --process --detach --pid-file).
func (c *crunLitePodman) afterStart(t *testing.T, name string) {
	top := c.must(t, "top", name, "pid", "comm")
	if !strings.Contains(top, "sh") {
		t.Errorf("podman top %s: %q, want the shell", name, top)
	}
	out := c.must(t, "exec", "-e", "FROM_EXEC=yes", name, "sh", "-c", `echo $FROM_EXEC; tr '\0' ' ' < /proc/1/cmdline`)
	if !strings.Contains(out, "yes") || !strings.Contains(out, "echo ready") {
		t.Errorf("podman exec %s: %q, want the env and the container's pid 1 (the shell printing ready)", name, out)
	}
	if r := c.podman(t, "exec", name, "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("podman exec %s sh -c 'exit 3': %v", name, r)
	}
	if !c.runtime.called("exec", "--process") {
		t.Errorf("podman exec did not go through crun-lite exec --process")
	}
}

// tty: run -t gives the container a pty (sent by crun-lite over conmon's
// console socket); podman's own stdio is a pty here too.
func (c *crunLitePodman) tty(t *testing.T) {
	master, slave := openPty(t)
	c.e.tty = slave
	defer func() { c.e.tty = nil }()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, master); close(done) }()
	r := c.run(t, "--rm", "-t", imageRef, "sh", "-c", `tty; test -t 0 && test -t 1 && echo both-ttys; exit 4`)
	slave.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	master.Close()
	if r.code != 4 {
		t.Errorf("run -t ... exit 4: exit %d, output %q", r.code, out.String())
	}
	text := strings.ReplaceAll(out.String(), "\r", "")
	if !strings.Contains(text, "/dev/pts/") || !strings.Contains(text, "both-ttys") {
		t.Errorf("run -t printed %q, want a /dev/pts name and both-ttys", text)
	}
	if !c.runtime.called("create", "--console-socket") {
		t.Errorf("podman did not pass --console-socket to crun-lite create")
	}
}

// commit: a container's writes, committed, are in the new image.
func (c *crunLitePodman) commit(t *testing.T) {
	if r := c.run(t, "--name", "c1", imageRef, "sh", "-c", "echo committed > /data/new && rm /data/keep"); r.code != 0 {
		t.Fatalf("run c1: %v", r)
	}
	c.noteID(t, "c1")
	c.must(t, "commit", "c1", committedRef)
	r := c.run(t, "--rm", committedRef, "sh", "-c", "cat /data/new; ls /data")
	if r.code != 0 || strings.Fields(r.out)[0] != "committed" || strings.Contains(r.out, "keep") {
		t.Errorf("the committed image: %v, want committed and no keep", r)
	}
	c.must(t, "rm", "c1")
}

// pod: a container of a pod joins the namespaces of the pod's infra
// container by path (linux.namespaces[].path).
func (c *crunLitePodman) pod(t *testing.T) {
	if r := c.podman(t, "pod", "create", "--name", "p1", "--network", "none"); r.code != 0 {
		t.Skipf("podman pod create (it builds its pause image from catatonit): %v", r)
	}
	defer c.podman(t, "pod", "rm", "-f", "p1")
	// No --network: the pod's (none) is shared through the infra container.
	r := c.podman(t, "run", "--pull", "never", "--rm", "--pod", "p1", imageRef, "sh", "-c", "for n in net ipc uts; do readlink /proc/self/ns/$n; done")
	if r.code != 0 {
		t.Fatalf("run --pod p1: %v", r)
	}
	infra := strings.TrimSpace(c.must(t, "pod", "inspect", "--format", "{{.InfraContainerID}}", "p1"))
	c.ids = append(c.ids, infra)
	pid := strings.TrimSpace(c.must(t, "inspect", "--format", "{{.State.Pid}}", infra))
	var want []string
	for _, n := range []string{"net", "ipc", "uts"} {
		l, err := os.Readlink("/proc/" + pid + "/ns/" + n)
		if err != nil {
			t.Fatalf("the infra container's %s namespace: %v", n, err)
		}
		want = append(want, l)
	}
	if got := strings.Fields(r.out); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the pod's container is in namespaces %v, want the infra container's %v", got, want)
	}
}

// openPty returns a new pty's master and slave.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	return m, s
}
