package podman

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// Limits: one podman command, and installing podman when it is missing.
const (
	commandLimit = 60 * time.Second
	installLimit = 5 * time.Minute
)

// Built once by TestMain, in a dir every user can read.
var (
	binDir      string // holds unionfsd and crun-lite
	unionfsdBin string
	crunLiteBin string
)

func TestMain(m *testing.M) {
	code, err := runTests(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func runTests(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "unionfsd-podman-bin-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	// The rootless test runs unionfsd as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return 1, err
	}
	binDir, unionfsdBin, crunLiteBin = dir, filepath.Join(dir, "unionfsd"), filepath.Join(dir, "crun-lite")
	for bin, pkg := range map[string]string{unionfsdBin: "../../cmd/unionfsd", crunLiteBin: "../../cmd/crun-lite"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		if out, err := build.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return m.Run(), nil
}

var (
	installOnce sync.Once
	installErr  string
)

// requirePodman skips unless we are root with podman installed; a missing
// podman is installed from Debian (apt-get) once.
func requirePodman(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (podman storage, FUSE mounts, a test user): run go test as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("/dev/fuse missing: modprobe fuse")
	}
	installOnce.Do(func() { installErr = installPodman() })
	if installErr != "" {
		t.Skip(installErr)
	}
}

// installPodman returns "" when podman is there, else why it cannot be.
func installPodman() string {
	if _, err := exec.LookPath("podman"); err == nil {
		return ""
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "podman not installed and no apt-get to install it: install podman"
	}
	ctx, cancel := context.WithTimeout(context.Background(), installLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=120", "podman")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("podman not installed, apt-get install podman failed (%v): %s",
			err, lastLines(string(out), 3))
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// env is a private podman setup: its own storage root, run root and
// storage.conf, with unionfsd as the overlay driver's mount_program. With
// cred set, podman runs as that (rootless) user.
type env struct {
	t                   *testing.T
	base                string // everything lives below
	root, runroot, conf string
	home, xdg           string
	cred                *syscall.Credential
	mountProgram        string
	// containersConf, when set, is podman's containers.conf (CONTAINERS_CONF).
	containersConf string
	// tty, when set, is podman's stdin, stdout and stderr (a pty slave).
	tty *os.File
}

// newEnv makes the dirs (readable by cred's user) and registers the
// cleanup: podman system reset, then anything left of ours is stopped.
func newEnv(t *testing.T, cred *syscall.Credential, mountProgram string) *env {
	t.Helper()
	base, err := os.MkdirTemp("", "unionfsd-podman-")
	if err != nil {
		t.Fatal(err)
	}
	base, _ = filepath.EvalSymlinks(base)
	os.Chmod(base, 0o755)
	e := &env{t: t, base: base, root: base + "/root", runroot: base + "/run", conf: base + "/storage.conf",
		home: base + "/home", xdg: base + "/xdg", cred: cred, mountProgram: mountProgram}
	t.Cleanup(e.cleanup)
	for _, d := range []string{e.home, e.xdg, e.root, e.runroot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			os.Chown(d, int(cred.Uid), int(cred.Gid))
		}
	}
	if err := os.WriteFile(e.conf, []byte(e.storageConf()), 0o644); err != nil {
		t.Fatal(err)
	}
	e.disableKernelIDMap()
	return e
}

// disableKernelIDMap works around containers-storage before 1.46 (podman
// before 4.5, Debian 12's 4.3): as root, for a container with --uidmap, it
// also put kernel idmapped mounts under the lower dirs it passes to the
// mount_program, so the lowers were mapped twice (fixed upstream by
// "overlay: disable native idmap with mount-program"). Its cached feature
// check in the run root tells it idmapped lowers do not work; later
// versions never ask with a mount_program.
func (e *env) disableKernelIDMap() {
	dir := filepath.Join(e.runroot, "overlay")
	f := filepath.Join(dir, "idmapped-lower-dir-false")
	if err := os.Mkdir(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if e.cred != nil {
		os.Chown(dir, int(e.cred.Uid), int(e.cred.Gid))
		os.Chown(f, int(e.cred.Uid), int(e.cred.Gid))
	}
}

// storageConf is what a user would write to use unionfsd: the overlay
// driver with mount_program.
func (e *env) storageConf() string {
	conf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrunroot = %q\ngraphroot = %q\n", e.runroot, e.root)
	if e.mountProgram != "" {
		conf += fmt.Sprintf("\n[storage.options.overlay]\nmount_program = %q\n", e.mountProgram)
	}
	return conf
}

// result is one podman run.
type result struct {
	out, err string
	code     int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
}

// podman runs podman with the private storage. The flags repeat
// storage.conf: podman 4 ignores its mount_program for root when --root is
// given, and the flags are how containers-storage's users pass it too.
func (e *env) podman(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandLimit)
	defer cancel()
	global := []string{"--root", e.root, "--runroot", e.runroot, "--storage-driver", "overlay",
		"--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	if e.mountProgram != "" {
		global = append(global, "--storage-opt", "overlay.mount_program="+e.mountProgram)
	}
	cmd := exec.CommandContext(ctx, "podman", append(global, args...)...)
	cmd.Dir = e.base
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + e.home, "XDG_RUNTIME_DIR=" + e.xdg, "XDG_CONFIG_HOME=" + e.home + "/.config",
		"CONTAINERS_STORAGE_CONF=" + e.conf, "LC_ALL=C"}
	if e.containersConf != "" {
		cmd.Env = append(cmd.Env, "CONTAINERS_CONF="+e.containersConf)
	}
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if e.tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = e.tty, e.tty, e.tty
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		// The pty becomes podman's controlling terminal (Ctty 0: stdin).
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("podman %q: no answer within %v; stderr %q", args, commandLimit, stderr.String())
	}
	r := result{out: stdout.String(), err: stderr.String()}
	if err != nil {
		r.code = -1
		if cmd.ProcessState != nil {
			r.code = cmd.ProcessState.ExitCode()
		}
	}
	return r
}

// must runs podman and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.podman(args...)
	if r.code != 0 {
		e.t.Fatalf("podman %s: %v", strings.Join(args, " "), r)
	}
	return r.out
}

// runFlags are for every podman run: no network (no netavark/CNI needed),
// only local images, and rlimits a process without CAP_SYS_RESOURCE can
// set (podman's default nofile and nproc may be above what this machine
// allows).
var runFlags = []string{"--network", "none", "--pull", "never",
	"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

func (e *env) run(args ...string) string {
	e.t.Helper()
	return e.must(append(append([]string{"run"}, runFlags...), args...)...)
}

// requireRunnable skips when podman cannot run any container here (no
// runtime, no conmon, no namespaces), checked with an exploded rootfs that
// needs no storage driver, so unionfsd is not what it tests.
func (e *env) requireRunnable() {
	e.t.Helper()
	rootfs := filepath.Join(e.base, "probe-rootfs")
	bb, err := imagetest.FindBusybox()
	if err != nil {
		e.t.Skip(err.Error())
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	data, err := os.ReadFile(bb)
	if err == nil {
		err = os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755)
	}
	if err == nil {
		err = os.Symlink("/proc/mounts", filepath.Join(rootfs, "etc/mtab"))
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if e.cred != nil {
		// podman writes into the rootfs as the user (root inside).
		filepath.Walk(rootfs, func(p string, _ os.FileInfo, _ error) error {
			return os.Lchown(p, int(e.cred.Uid), int(e.cred.Gid))
		})
	}
	r := e.podman(append(append([]string{"run", "--rm"}, runFlags...), "--rootfs", rootfs, "/bin/busybox", "true")...)
	if r.code != 0 {
		e.t.Skipf("podman cannot run containers on this machine (not a unionfsd problem): %s",
			lastLines(r.err, 2))
	}
}

// cleanup resets the storage, stops what is left of ours and removes the
// dirs. Leftover mounts and processes are test failures.
func (e *env) cleanup() {
	t := e.t
	e.podman("system", "reset", "--force")
	if e.cred != nil {
		// The rootless pause process keeps podman's user namespace, and the
		// mounts inside it, alive.
		killUserProcesses(int(e.cred.Uid))
	}
	for _, pid := range ourDaemons(e.base) {
		t.Errorf("cleanup: unionfsd %d still running; stopping it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// containers-storage's own bind mount of its overlay dir may stay;
	// a FUSE mount is a leak.
	for _, m := range mountsUnder(e.base) {
		if strings.HasPrefix(m.fstype, "fuse") {
			t.Errorf("cleanup: %s still mounted; unmounting", m.point)
		}
		if err := unix.Unmount(m.point, 0); err != nil {
			unix.Unmount(m.point, unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(e.base); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// ourDaemons lists live processes of the unionfsd under test whose
// command line names a path under base.
func ourDaemons(base string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || !isLive(pid) {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if exe == unionfsdBin && bytes.Contains(cmdline, []byte(base)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isLive reports whether pid exists and is not a zombie.
func isLive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// mountsUnder lists the mounts at or below dir in our mount namespace,
// innermost first.
func mountsUnder(dir string) []mount {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []mount
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		if f[4] == dir || strings.HasPrefix(f[4], dir+"/") {
			out = append([]mount{{point: f[4], fstype: g[0]}}, out...)
		}
	}
	return out
}

type mount struct{ point, fstype string }

func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// testUser creates an unprivileged user with subordinate id ranges, and
// deletes it and its processes at cleanup. It skips when the machine
// cannot give it what rootless podman needs.
func testUser(t *testing.T) (*syscall.Credential, int, int) {
	t.Helper()
	for _, tool := range []string{"useradd", "userdel", "newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install passwd uidmap)", tool)
		}
	}
	name := fmt.Sprintf("ufpm%d", os.Getpid()%1000000)
	if out, err := exec.Command("useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		exec.Command("userdel", name).Run()
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	t.Cleanup(func() {
		killUserProcesses(uid)
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	subUID, subGID := subIDStart("/etc/subuid", name), subIDStart("/etc/subgid", name)
	if subUID < 0 || subGID < 0 {
		t.Skipf("useradd gave %s no /etc/subuid and /etc/subgid ranges (set SUB_UID_COUNT in /etc/login.defs)", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, subUID, subGID
}

// subIDStart is the first id of the user's range in an /etc/subuid-style
// file, or -1.
func subIDStart(file, name string) int {
	data, _ := os.ReadFile(file)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 3 && f[0] == name {
			if n, err := strconv.Atoi(f[1]); err == nil {
				return n
			}
		}
	}
	return -1
}

// killUserProcesses kills, by pid, what still runs as uid.
func killUserProcesses(uid int) {
	for try := 0; try < 3; try++ {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, d := range ents {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join("/proc", d.Name()), &st) == nil && int(st.Uid) == uid && isLive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fuseForUsers makes /dev/fuse usable by every user (udev's usual 0666;
// some machines and containers have 0600) and restores its mode at
// cleanup.
func fuseForUsers(t *testing.T) {
	t.Helper()
	st, err := os.Stat("/dev/fuse")
	if err != nil {
		t.Skip("no /dev/fuse: modprobe fuse")
	}
	old := st.Mode().Perm()
	if old&0o006 == 0o006 {
		return
	}
	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		t.Skipf("/dev/fuse is mode %o and cannot be opened up for the test user: %v", old, err)
	}
	t.Cleanup(func() { os.Chmod("/dev/fuse", old) })
}
