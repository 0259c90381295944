package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/layers/imagetest"
	rt "github.com/unionfsd/unionfsd/runtime"
)

// The container tests run the crun-lite binary, built once by TestMain, as a
// subprocess: containers need real processes (re-exec, namespaces), which
// runMain in the test process cannot give. They need root; the rootless
// test makes its own unprivileged user.

var (
	crunBin    string // the built binary, in a 0755 dir others can exec from
	busyboxTar string // a docker-save tarball of busybox:latest ("" without busybox-static)
	testTmp    string
)

func TestMain(m *testing.M) {
	// In-process commands (cli) that re-execute /proc/self/exe start this
	// test binary as a stage: dispatch it as main does.
	if rt.IsStage(os.Args) {
		os.Exit(rt.RunStage(os.Args))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "crun-lite-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	testTmp = dir
	crunBin = filepath.Join(dir, "crun-lite")
	if out, err := exec.Command(goTool(), "build", "-o", crunBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build crun-lite: %v\n%s", err, out)
		return 1
	}
	tar := filepath.Join(dir, "busybox.tar")
	if err := imagetest.WriteBusyboxImage(tar); err == nil {
		os.Chmod(tar, 0o644)
		busyboxTar = tar
	}
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(goruntime.GOROOT(), "bin", "go")
}

// needContainers skips unless we are root with busybox-static installed.
func needContainers(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("container tests need root: sudo ./scripts/test.sh")
	}
	if busyboxTar == "" {
		t.Skip("busybox-static is not installed: apt-get install busybox-static")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse: modprobe fuse")
	}
}

// result is what one crun-lite invocation did.
type result struct {
	code     int
	out, err string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
}

// env is one store and the containers tests made in it.
type env struct {
	t     *testing.T
	store string
	cred  *syscall.Credential // run as this user (nil: as root)
	bin   string              // "": crunBin
	home  string
	extra []string // more environment for crun-lite (the network tests' bridge)
}

// newEnv makes a store with busybox:latest imported and, at cleanup,
// removes every container, then checks that nothing of it is left mounted
// or running.
func newEnv(t *testing.T) *env {
	t.Helper()
	needContainers(t)
	e := &env{t: t, store: filepath.Join(t.TempDir(), "store")}
	e.importImage(busyboxTar)
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) importImage(path string) {
	e.t.Helper()
	if r := e.run("import", path); r.code != 0 {
		e.t.Fatalf("import %s: %v", path, r)
	}
}

// cleanup removes the containers and checks for leaks.
func (e *env) cleanup() {
	r := e.run("ps", "--no-trunc")
	for _, line := range strings.Split(r.out, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 {
			e.run("rm", "-f", f[0])
		}
	}
	if m := mountsUnder(e.store); len(m) > 0 {
		e.t.Errorf("mounts left under %s: %v", e.store, m)
	}
	if p := stageProcs(e.store); len(p) > 0 {
		e.t.Errorf("crun-lite processes left for %s: %v", e.store, p)
		for _, pid := range p {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cmd prepares a crun-lite invocation on the env's store.
func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	bin := crunBin
	if e.bin != "" {
		bin = e.bin
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--root", e.store}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TESTVAR=from-host"}, e.extra...)
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
		cmd.Env = append(cmd.Env, "HOME="+e.home)
		cmd.Dir = e.home
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs crun-lite with args and waits (one minute at most).
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.cmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return result{code: code, out: out.String(), err: errb.String()}
}

// mustRun runs and fails the test unless the exit status is 0.
func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("crun-lite %v: %v", args, r)
	}
	return r.out
}

// background starts crun-lite and returns it with its stdout as lines.
func (e *env) background(args ...string) (*exec.Cmd, *bufio.Scanner) {
	e.t.Helper()
	cmd := e.cmd(context.Background(), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

// waitLine reads lines until one equals want.
func waitLine(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			if sc.Text() == want {
				done <- true
				return
			}
		}
		done <- false
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("output ended before %q", want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q within 30s", want)
	}
}

// containerDir returns the directory of the container named name.
func (e *env) containerDir(name string) string {
	e.t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(e.store, "containers", "*", "container.json"))
	for _, p := range dirs {
		var rec struct{ Name string }
		data, _ := os.ReadFile(p)
		if json.Unmarshal(data, &rec) == nil && rec.Name == name {
			return filepath.Dir(p)
		}
	}
	e.t.Fatalf("no container %s in %s", name, e.store)
	return ""
}

// containerCount is the number of container dirs in the store.
func (e *env) containerCount() int {
	ents, _ := os.ReadDir(filepath.Join(e.store, "containers"))
	n := 0
	for _, d := range ents {
		if d.IsDir() {
			n++
		}
	}
	return n
}

// layerDir is the single layer dir of busybox:latest.
func (e *env) layerDir() string {
	e.t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(e.store, "layers", "*", "diff"))
	if len(dirs) == 0 {
		e.t.Fatal("no layer dir in the store")
	}
	return dirs[0]
}

// mountsUnder lists mount points of the host's namespace below dir.
func mountsUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// stageProcs lists crun-lite supervisor and init processes of a store.
func stageProcs(store string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte("__crun-lite-stage")) && bytes.Contains(cmdline, []byte(store)) {
			out = append(out, pid)
		}
	}
	return out
}

// treeDigest hashes names, modes and contents below dir.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", p, info.Mode(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lines splits output into trimmed lines (a pty adds \r).
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestRunNamespacesAndMounts(t *testing.T) {
	e := newEnv(t)
	layer := e.layerDir()
	before := treeDigest(t, layer)
	script := `echo pid=$$; hostname
ls /proc | grep -E '^[0-9]+$' | tr '\n' ' '; echo
cut -d' ' -f5 /proc/self/mountinfo | tr '\n' ' '; echo
grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ /sys ' /proc/self/mountinfo | cut -d' ' -f6
if touch /sys/kernel/x 2>/dev/null; then echo sys=writable; else echo sys=refused; fi
ls /dev | tr '\n' ' '; echo
echo data > /etc/written; rm /etc/passwd; cat /etc/hostname
mknod /dev/sdx b 8 0 2>/dev/null && echo mknod-allowed
grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -d '\t' | tr '\n' ' '; echo
ulimit -n`
	out := e.mustRun("run", "--name", "ns", "--hostname", "boxy", "busybox", "sh", "-c", script)
	l := lines(out)
	if len(l) != 10 {
		t.Fatalf("short output %q", out)
	}
	if l[0] != "pid=1" {
		t.Errorf("the command is not pid 1: %q", l[0])
	}
	if l[1] != "boxy" || l[7] != "boxy" {
		t.Errorf("hostname %q, /etc/hostname %q; want boxy", l[1], l[7])
	}
	for _, p := range strings.Fields(l[2]) {
		if n, _ := strconv.Atoi(p); n > 20 {
			t.Errorf("/proc shows pid %d: host processes are visible (%s)", n, l[2])
		}
	}
	for _, want := range []string{"/proc/keys", "/proc/sys", "/sys/firmware", "/dev/pts", "/dev/shm", "/dev/mqueue"} {
		if !strings.Contains(" "+l[3]+" ", " "+want+" ") {
			t.Errorf("%s is not mounted (masked, read-only or device fs): %s", want, l[3])
		}
	}
	// docker's default capability set without CAP_MKNOD, no_new_privs,
	// runc's NOFILE limit.
	if l[8] != "CapEff:00000000a00425fb CapBnd:00000000a00425fb NoNewPrivs:1 " || l[9] != "1024" {
		t.Errorf("capabilities/no_new_privs %q, NOFILE %q", l[8], l[9])
	}
	allowed := []string{"/proc", "/dev", "/sys"}
	for _, mp := range strings.Fields(l[3]) {
		ok := mp == "/"
		for _, a := range allowed {
			ok = ok || mp == a || strings.HasPrefix(mp, a+"/")
		}
		if !ok {
			t.Errorf("host mount %s visible in the container: %s", mp, l[3])
		}
	}
	if !strings.HasPrefix(l[4], "ro,") || l[5] != "sys=refused" {
		t.Errorf("/sys not read-only: mount options %q, write %q", l[4], l[5])
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd", "stdin"} {
		if !strings.Contains(" "+l[6]+" ", " "+d+" ") {
			t.Errorf("/dev/%s missing: %q", d, out)
		}
	}
	// Writes land in the upper dir only; the layer is untouched.
	upper := filepath.Join(e.containerDir("ns"), "upper")
	if data, err := os.ReadFile(filepath.Join(upper, "etc/written")); err != nil || string(data) != "data\n" {
		t.Errorf("upper/etc/written: %q %v", data, err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "etc/.wh.passwd")); err != nil {
		t.Errorf("no whiteout for the removed /etc/passwd in the upper: %v", err)
	}
	if after := treeDigest(t, layer); after != before {
		t.Errorf("the image layer changed")
	}
	// A second container of the same image sees none of it.
	out = e.mustRun("run", "--rm", "busybox", "sh", "-c", "cat /etc/written 2>&1; ls /etc/passwd")
	if !strings.Contains(out, "No such file") || !strings.Contains(out, "/etc/passwd") {
		t.Errorf("second container sees the first one's changes: %q", out)
	}
	if ps := e.mustRun("ps"); !strings.Contains(ps, "ns") || !strings.Contains(ps, "Exited (0)") {
		t.Errorf("ps: %q", ps)
	}
}

func TestRunExitCodes(t *testing.T) {
	e := newEnv(t)
	nocmd := filepath.Join(t.TempDir(), "nocmd.tar")
	spec, _ := imagetest.BusyboxSpec()
	spec.Names, spec.Cmd = []string{"nocmd:1"}, nil
	if err := imagetest.WriteDockerArchive(nocmd, spec); err != nil {
		t.Fatal(err)
	}
	e.importImage(nocmd)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"busybox", "sh", "-c", "exit 7"}, 7, ""},
		{[]string{"busybox", "nosuchcmd"}, 127, "executable file not found"},
		{[]string{"busybox", "/no/such/file"}, 127, "no such file"},
		{[]string{"busybox", "/etc/passwd"}, 126, "permission denied"},
		{[]string{"nope:1", "true"}, 125, "nope:1: not in the store"},
		{[]string{"nocmd:1"}, 125, "no Entrypoint or Cmd"},
		{[]string{"-u", "nosuchuser", "busybox", "true"}, 125, "unable to find user nosuchuser"},
		{[]string{"--user=-5", "busybox", "true"}, 125, "must not be negative"},
		{[]string{"-v", "/no/such/dir:/x", "busybox", "true"}, 125, "/no/such/dir: no such file"},
		{[]string{"-v", "relative:/x", "busybox", "true"}, 125, "must be absolute"},
		{[]string{"--memory", "1k", "busybox", "true"}, 125, "minimum memory limit"},
		{[]string{"--net", "wifi", "busybox", "true"}, 125, "want none, host or bridge"},
	}
	for _, tc := range cases {
		r := e.run(append([]string{"run", "--rm"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.err, tc.err) {
			t.Errorf("run %v: %v; want exit %d and %q", tc.args, r, tc.code, tc.err)
		}
		if n := strings.Count(strings.TrimSpace(r.err), "\n"); tc.err != "" && n > 0 {
			t.Errorf("run %v: error is not one line: %q", tc.args, r.err)
		}
	}
	if n := e.containerCount(); n != 0 {
		t.Errorf("%d container dirs left after --rm runs", n)
	}
	// Killed by a signal: 128+N.
	cmd, sc := e.background("run", "--rm", "--name", "victim", "busybox", "sh", "-c", "echo up; exec sleep 30")
	waitLine(t, sc, "up")
	e.mustRun("kill", "victim", "KILL")
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Errorf("container killed by SIGKILL: exit %d, want 137", code)
	}
}

func TestRunSignalForwarding(t *testing.T) {
	e := newEnv(t)
	cmd, sc := e.background("run", "--rm", "busybox", "sh", "-c",
		`trap 'echo got-term; exit 42' TERM; trap 'echo got-hup' HUP; echo ready; while true; do sleep 0.05; done`)
	waitLine(t, sc, "ready")
	cmd.Process.Signal(syscall.SIGHUP)
	waitLine(t, sc, "got-hup")
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, sc, "got-term")
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 42 {
		t.Errorf("exit %d after SIGTERM, want the trap's 42", code)
	}
}

// writeImageWithUser writes a docker-save dir of img whose config also has
// User (imagetest does not set it).
func writeImageWithUser(t *testing.T, img imagetest.Image, user string) string {
	t.Helper()
	dir := t.TempDir()
	if err := imagetest.WriteDockerDir(dir, img); err != nil {
		t.Fatal(err)
	}
	var manifest []map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(data, &manifest); err != nil {
		t.Fatal(err)
	}
	old := manifest[0]["Config"].(string)
	var cfg map[string]any
	data, _ = os.ReadFile(filepath.Join(dir, old))
	json.Unmarshal(data, &cfg)
	cfg["config"].(map[string]any)["User"] = user
	data, _ = json.Marshal(cfg)
	sum := sha256.Sum256(data)
	name := hex.EncodeToString(sum[:]) + ".json"
	os.Remove(filepath.Join(dir, old))
	os.WriteFile(filepath.Join(dir, name), data, 0o644)
	manifest[0]["Config"] = name
	data, _ = json.Marshal(manifest)
	os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644)
	return dir
}

func TestRunImageConfigAndOverrides(t *testing.T) {
	e := newEnv(t)
	spec, _ := imagetest.BusyboxSpec()
	spec.Names, spec.Env, spec.WorkingDir = []string{"cfg:1"}, append(spec.Env, "FOO=img"), "/srv"
	e.importImage(writeImageWithUser(t, spec, "nobody"))
	spec.Names, spec.Entrypoint, spec.Cmd = []string{"ep:1"}, []string{"/bin/echo", "ep"}, []string{"default"}
	e.importImage(writeImageWithUser(t, spec, ""))

	show := `echo "$FOO|$TESTVAR|$(pwd)|$(id -u):$(id -g)|$HOME"`
	if got := strings.TrimSpace(e.mustRun("run", "--rm", "cfg:1", "sh", "-c", show)); got != "img||/srv|65534:65534|/" {
		t.Errorf("image config: got %q, want img||/srv|65534:65534|/", got)
	}
	got := strings.TrimSpace(e.mustRun("run", "--rm", "-e", "FOO=flag", "-e", "TESTVAR", "-w", "/tmp", "-u", "0:0", "cfg:1", "sh", "-c", show))
	if got != "flag|from-host|/tmp|0:0|/root" {
		t.Errorf("overrides: got %q, want flag|from-host|/tmp|0:0|/root", got)
	}
	if got := strings.TrimSpace(e.mustRun("run", "--rm", "-u", "1234", "-w", "/new/dir", "busybox", "sh", "-c", `echo "$(id -u):$(id -g)|$(pwd)"`)); got != "1234:0|/new/dir" {
		t.Errorf("numeric user and a new workdir: got %q, want 1234:0|/new/dir", got)
	}
	if got := strings.TrimSpace(e.mustRun("run", "--rm", "ep:1")); got != "ep default" {
		t.Errorf("entrypoint + cmd: %q", got)
	}
	if got := strings.TrimSpace(e.mustRun("run", "--rm", "ep:1", "x", "y")); got != "ep x y" {
		t.Errorf("entrypoint + args: %q", got)
	}
}

func TestRunVolumes(t *testing.T) {
	e := newEnv(t)
	rw, ro := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(rw, "in.txt"), []byte("from host\n"), 0o644)
	os.WriteFile(filepath.Join(ro, "keep.txt"), []byte("keep\n"), 0o644)
	file := filepath.Join(t.TempDir(), "motd")
	os.WriteFile(file, []byte("motd\n"), 0o644)
	out := e.mustRun("run", "--rm", "-v", rw+":/data", "-v", ro+":/mnt/ro:ro", "-v", file+":/etc/motd:ro", "busybox", "sh", "-c",
		`cat /data/in.txt /mnt/ro/keep.txt /etc/motd; echo out > /data/out.txt; (echo x > /mnt/ro/keep.txt) 2>/dev/null || echo ro-refused`)
	if want := "from host\nkeep\nmotd\nro-refused\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if data, _ := os.ReadFile(filepath.Join(rw, "out.txt")); string(data) != "out\n" {
		t.Errorf("write through the rw volume: %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(ro, "keep.txt")); string(data) != "keep\n" {
		t.Errorf("read-only volume changed: %q", data)
	}
}

func TestRunRmPsAndCommit(t *testing.T) {
	e := newEnv(t)
	e.mustRun("run", "--rm", "--name", "gone", "busybox", "true")
	if n := e.containerCount(); n != 0 {
		t.Errorf("--rm left %d container dirs", n)
	}
	// A running container: its union is mounted only in its own namespaces.
	cmd, sc := e.background("run", "--name", "long", "busybox", "sh", "-c", "echo up; exec sleep 30")
	waitLine(t, sc, "up")
	if ps := e.mustRun("ps"); !strings.Contains(ps, "long") || !strings.Contains(ps, "Up ") {
		t.Errorf("ps of a running container: %q", ps)
	}
	if m := mountsUnder(e.store); len(m) > 0 {
		t.Errorf("the container's union is visible in the host's mount namespace: %v", m)
	}
	if r := e.run("rm", "long"); r.code == 0 || !strings.Contains(r.err, "is running") {
		t.Errorf("rm of a running container: %v", r)
	}
	e.mustRun("rm", "-f", "long")
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Errorf("rm -f: run exited %d, want 137", code)
	}
	if p := stageProcs(e.store); len(p) > 0 {
		t.Errorf("processes left after rm -f: %v", p)
	}
	if n := e.containerCount(); n != 0 {
		t.Errorf("rm -f left %d container dirs", n)
	}
	// The upper dir outlives the container until rm, so commit works.
	e.mustRun("run", "--name", "keep", "busybox", "sh", "-c", "echo kept > /kept")
	e.mustRun("commit", "keep", "kept:1")
	if got := e.mustRun("run", "--rm", "kept:1", "cat", "/kept"); got != "kept\n" {
		t.Errorf("committed image: %q", got)
	}
	if r := e.run("rmi", "kept:1"); r.code != 0 {
		t.Errorf("rmi of an image no container uses: %v", r)
	}
	if r := e.run("rmi", "busybox"); r.code == 0 || !strings.Contains(r.err, "used by container(s) keep") {
		t.Errorf("rmi of an image a container uses: %v", r)
	}
	e.mustRun("rm", "keep")
	if r := e.run("rm", "keep"); r.code == 0 || !strings.Contains(r.err, "no such container") {
		t.Errorf("rm twice: %v", r)
	}
}

func TestRunTTY(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("run", "--rm", "-t", "busybox", "sh", "-c", "tty; [ -t 1 ] && echo stdout-is-tty; echo $TERM")
	if got := lines(out); len(got) != 3 || got[0] != "/dev/pts/0" || got[1] != "stdout-is-tty" || got[2] != "xterm" {
		t.Errorf("-t: got %q", out)
	}
	// Under --init the command still owns the terminal.
	out = e.mustRun("run", "--rm", "-t", "--init", "busybox", "sh", "-c", "tty; [ -t 1 ] && echo stdout-is-tty; ps -o pid,comm | grep -c sh")
	if got := lines(out); len(got) != 3 || got[0] != "/dev/pts/0" || got[1] != "stdout-is-tty" {
		t.Errorf("-t --init: got %q", out)
	}
}

// cgroupMemoryAvailable tells whether a memory controller is mounted, v2
// or v1, so limits can be enforced here.
func cgroupMemoryAvailable() bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		_, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(post)
		if !ok || len(f) < 3 {
			continue
		}
		if f[0] == "cgroup" && strings.Contains(","+f[2]+",", ",memory,") {
			return true
		}
		if f[0] == "cgroup2" {
			mp := strings.Fields(line)[4]
			if c, _ := os.ReadFile(filepath.Join(mp, "cgroup.controllers")); strings.Contains(string(c), "memory") {
				return true
			}
		}
	}
	return false
}

func TestRunCgroupLimits(t *testing.T) {
	e := newEnv(t)
	if !cgroupMemoryAvailable() {
		t.Skip("no memory cgroup controller (v1 or v2) on this host")
	}
	before := map[string]bool{}
	for _, p := range crunLiteCgroups() {
		before[p] = true
	}
	// tail buffers its endless first line. ulimit -v bounds it should the
	// limit not work. (One process only: a second one paging its code in
	// through FUSE at the limit makes the kernel thrash for a long time
	// before it picks an OOM victim.)
	r := e.run("run", "--rm", "--memory", "16m", "busybox", "sh", "-c", "ulimit -v 300000; tail /dev/zero; echo status=$?")
	if r.code != 0 || !strings.Contains(r.out, "status=137") {
		t.Errorf("memory limit not enforced (tail should be OOM-killed): %v", r)
	}
	r = e.run("run", "--rm", "--pids-limit", "6", "busybox", "sh", "-c",
		"for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait; echo finished")
	if !strings.Contains(r.err, "can't fork") {
		t.Errorf("pids limit not enforced: %v", r)
	}
	if r := e.run("run", "--rm", "--cpus", "0.5", "busybox", "true"); r.code != 0 {
		t.Errorf("--cpus: %v", r)
	}
	// A quota below the kernel's 1ms minimum cannot be set: one line, 125.
	if r := e.run("run", "--rm", "--cpus", "0.001", "busybox", "true"); r.code != 125 || !strings.Contains(r.err, "cannot set cgroup limit") {
		t.Errorf("unsettable cpu quota: %v", r)
	}
	// Nothing of the containers' cgroups stays behind. (Only dirs that
	// came during this test count: other test binaries on the machine may
	// run containers of their own meanwhile.)
	for _, p := range crunLiteCgroups() {
		if !before[p] {
			t.Errorf("cgroup left behind: %s", p)
		}
	}
}

// crunLiteCgroups lists the containers' cgroup dirs (.../crun-lite/ID)
// in every hierarchy.
func crunLiteCgroups() []string {
	var dirs []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(p, "/") > 8 {
			return filepath.SkipDir
		}
		if filepath.Base(filepath.Dir(p)) == "crun-lite" {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs
}

// --rootless as root must never give a container whose root is the host's
// root: it maps the container's root elsewhere, or refuses.
func TestRunRootlessAsRoot(t *testing.T) {
	e := newEnv(t)
	r := e.run("run", "--rm", "--rootless", "busybox", "sh", "-c", "cat /proc/self/uid_map")
	if r.code == 0 {
		for _, l := range lines(r.out) {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "0" && f[1] == "0" {
				t.Errorf("--rootless as root maps the container's root to the host's root: %q", r.out)
			}
		}
		return
	}
	if r.code != 125 || !strings.Contains(r.err, "--rootless as root") || len(lines(r.err)) != 1 {
		t.Errorf("--rootless as root: %v; want a one-line refusal and 125", r)
	}
	if n := e.containerCount(); n != 0 {
		t.Errorf("the refused run left %d containers", n)
	}
}

func TestRunWithoutUserNamespaces(t *testing.T) {
	e := newEnv(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	// A user namespace whose own limit of nested user namespaces is 0, and
	// a bundle that asks for one.
	b := makeBundle(t, e)
	e.mustRun("spec", "--rootless", "-b", b)
	setProcess(t, b, "true")
	script := fmt.Sprintf("echo 0 > /proc/sys/user/max_user_namespaces && exec %s --root %s run -b %s nouserns", crunBin, e.store, b)
	out, err := exec.Command(unshare, "-Ur", "sh", "-c", script).CombinedOutput()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 125 || !strings.Contains(string(out), "cannot create a user namespace") {
		t.Errorf("without user namespaces: exit %d, %q; want 125 and a clear message", code, out)
	}
}

// An image container gets runc's default device rules: nothing but the
// standard character devices and terminals may be opened.
func TestRunDefaultDeviceRules(t *testing.T) {
	e := newEnv(t)
	base := v1DevicesMount()
	if base == "" {
		t.Skip("no cgroup v1 devices hierarchy on this host")
	}
	cmd, sc := e.background("run", "--rm", "--name", "devs", "busybox", "sh", "-c", "echo x >/dev/null; head -c1 /dev/urandom >/dev/null && echo ready; exec sleep 30")
	waitLine(t, sc, "ready")
	id := filepath.Base(e.containerDir("devs"))
	data, err := os.ReadFile(filepath.Join(base, "crun-lite", id, "devices.list"))
	got := strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "|")
	want := "c *:* m|b *:* m|c 1:3 rwm|c 1:8 rwm|c 1:7 rwm|c 5:0 rwm|c 1:5 rwm|c 1:9 rwm|c 5:1 rwm|c 136:* rwm|c 5:2 rwm"
	if err != nil || got != want {
		t.Errorf("container's devices.list: %q (%v), want %q", got, err, want)
	}
	cmd.Process.Kill() // the supervisor kills the container when we go
	cmd.Wait()
}

// v1DevicesMount is where the v1 devices hierarchy is mounted, or "".
func v1DevicesMount() string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(post)
		if ok && len(f) >= 3 && f[0] == "cgroup" && strings.Contains(","+f[2]+",", ",devices,") {
			if pf := strings.Fields(pre); len(pf) > 4 && pf[3] == "/" {
				return pf[4]
			}
		}
	}
	return ""
}

// zombiesIn counts the zombie processes in the pid namespace of pid.
func zombiesIn(pid int) (n int) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return -1
	}
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		if other, _ := os.Readlink("/proc/" + d.Name() + "/ns/pid"); other != ns {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + d.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i+1:], []byte(" Z")) {
			n++
		}
	}
	return n
}

// containerPid is the host pid of the container's PID 1.
func (e *env) containerPid(name string) int {
	e.t.Helper()
	var st struct{ Pid int }
	data, _ := os.ReadFile(filepath.Join(e.containerDir(name), "state.json"))
	if json.Unmarshal(data, &st) != nil || st.Pid <= 0 {
		e.t.Fatalf("state of %s: %q", name, data)
	}
	return st.Pid
}

// orphanScript leaves ten orphans that end a second later, when the shell
// has become a command that never waits for children.
const orphanScript = `for i in 1 2 3 4 5; do sh -c 'sleep 1 & sleep 1 &'; done; echo ready; exec sleep 30`

// waitZombies polls until cond holds for the count of zombies of the
// container's pid namespace, or 5s pass; it returns the last count.
func waitZombies(pid int, cond func(int) bool) int {
	deadline := time.Now().Add(5 * time.Second)
	n := zombiesIn(pid)
	for !cond(n) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = zombiesIn(pid)
	}
	return n
}

func TestRunInitReapsAndForwards(t *testing.T) {
	e := newEnv(t)
	// Without --init the orphans stay zombies of the command (PID 1): the
	// check below can see them.
	cmd, sc := e.background("run", "--rm", "--name", "noinit", "busybox", "sh", "-c", orphanScript)
	waitLine(t, sc, "ready")
	if n := waitZombies(e.containerPid("noinit"), func(n int) bool { return n >= 10 }); n != 10 {
		t.Errorf("without --init: %d zombies, want the 10 orphans (is the check blind?)", n)
	}
	cmd.Process.Kill()
	cmd.Wait()

	cmd, sc = e.background("run", "--rm", "--init", "--hostname", "inithost", "--name", "init", "busybox", "sh", "-c", orphanScript)
	waitLine(t, sc, "ready")
	pid := e.containerPid("init")
	// The reaper's root and working dir are the container's, not the host's.
	for _, link := range []string{"root", "cwd"} {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s/etc/hostname", pid, link)); string(data) != "inithost\n" {
			t.Errorf("reaper's %s: /etc/hostname %q (%v), want the container's", link, data, err)
		}
	}
	// The reaper runs from a sealed in-memory copy of crun-lite, not from
	// the host's binary, which a container reaching /proc/1/exe could
	// otherwise open for writing once it is not running.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.HasPrefix(exe, "/memfd:") {
		t.Errorf("reaper's /proc/PID/exe: %q (%v), want a sealed memfd copy", exe, err)
	}
	time.Sleep(1500 * time.Millisecond) // the orphans have ended
	if n := waitZombies(pid, func(n int) bool { return n == 0 }); n != 0 {
		t.Errorf("with --init: %d zombies left in the container", n)
	}
	// The command is not PID 1: SIGTERM has its default action and ends it,
	// and the container exits with its status.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 143 {
			t.Errorf("--init, SIGTERM: exit %d, want 143 (128+15)", code)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("--init: SIGTERM did not reach the command")
	}

	// Handlers see the signals too, and exit codes pass through.
	cmd, sc = e.background("run", "--rm", "--init", "busybox", "sh", "-c",
		`trap 'echo got-hup' HUP; trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done`)
	waitLine(t, sc, "ready")
	cmd.Process.Signal(syscall.SIGHUP)
	waitLine(t, sc, "got-hup")
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, sc, "got-term")
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 42 {
		t.Errorf("--init: exit %d after the TERM trap, want 42", code)
	}
	if out := e.mustRun("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$"); !strings.Contains(out, "__crun-lite-stage reap") || lines(out)[1] == "1" {
		t.Errorf("--init: PID 1 and the command: %q", out)
	}
}
