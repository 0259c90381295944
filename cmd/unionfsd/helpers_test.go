package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
)

// unionfsdBin is the command under test, built once by TestMain.
var unionfsdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "unionfsd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Tests also run the binary as nobody.
	os.Chmod(dir, 0o755)
	unionfsdBin = filepath.Join(dir, "unionfsd")
	build := exec.Command("go", "build", "-o", unionfsdBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/unionfsd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// layout is a set of layer dirs made by a test; every path is absolute and
// symlink-free.
type layout struct {
	base, l1, l2, up, work, mnt string
}

// newLayout makes lower layers l1 (bottom) and l2, an empty upper, a work
// dir path (not created) and a mountpoint, in a fresh dir readable by every
// user. Its cleanup unmounts and stops whatever a test left behind there.
func newLayout(t *testing.T) *layout {
	t.Helper()
	base, err := os.MkdirTemp("", "unionfsd-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err = filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	b := &layout{base: base, l1: base + "/l1", l2: base + "/l2", up: base + "/up",
		work: base + "/work", mnt: base + "/mnt"}
	files := map[string]string{
		"l1/a": "a from l1\n", "l1/b": "b from l1\n", "l2/b": "b from l2\n",
		"l1/dir/x": "x from l1\n",
	}
	for _, d := range []string{b.l1 + "/dir", b.l2, b.up, b.mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { cleanUp(t, base) })
	return b
}

// cleanUp stops every unionfsd process whose command line names base, then
// unmounts any FUSE mount left under base; leftovers are test failures.
// Processes go first: killing a daemon after its mount appeared would leave
// a dead mount behind.
func cleanUp(t *testing.T, base string) {
	for _, pid := range daemonsFor(base) {
		t.Errorf("cleanup: unionfsd %d still running; stopping it", pid)
		syscall.Kill(pid, syscall.SIGTERM)
		if !waitGone(pid, 5*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 3*time.Second)
		}
	}
	for _, m := range fuseMountsUnder(base) {
		t.Errorf("cleanup: %s still mounted; unmounting", m)
		if err := unix.Unmount(m, 0); err != nil {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
}

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// runOpts changes how runCLI starts the command.
type runOpts struct {
	env  []string // added to the environment
	cred *syscall.Credential
	wrap []string // a command to run unionfsd through (unshare ...)
}

// runCLI runs unionfsd with args and waits for it; a background daemon it
// starts must let go of stdout and stderr, or the run fails after a delay.
func runCLI(t *testing.T, ro runOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append(append(append([]string{}, ro.wrap...), unionfsdBin), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), ro.env...)
	if ro.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: ro.cred}
	}
	cmd.WaitDelay = 3 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		t.Fatalf("unionfsd %q: its daemon kept stdout/stderr open", args)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %q: %v", argv, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// fuseMountsUnder lists FUSE mount points at or below dir.
func fuseMountsUnder(dir string) []string {
	var out []string
	for _, m := range readMountinfo() {
		if strings.HasPrefix(m.fstype, "fuse") && (m.point == dir || strings.HasPrefix(m.point, dir+"/")) {
			out = append(out, m.point)
		}
	}
	return out
}

type mountEntry struct{ point, fstype, source string }

func readMountinfo() []mountEntry {
	mounts, err := inspect.Mounts()
	if err != nil {
		panic(err)
	}
	var out []mountEntry
	for _, m := range mounts {
		out = append(out, mountEntry{point: m.Point, fstype: m.FSType, source: m.Source})
	}
	return out
}

func mountAt(dir string) (mountEntry, bool) {
	var found mountEntry
	ok := false
	for _, m := range readMountinfo() {
		if m.point == dir {
			found, ok = m, true // the last one is on top
		}
	}
	return found, ok
}

// daemonsFor lists live processes of the binary under test whose command
// line contains s.
func daemonsFor(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !isLive(pid) {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != unionfsdBin {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isLive reports whether pid exists and is not a zombie waiting for init.
func isLive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

func waitGone(pid int, limit time.Duration) bool {
	return eventually(limit, func() bool { return !isLive(pid) })
}

func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNothingLeft fails if a FUSE mount or a unionfsd process for the
// layout remains.
func assertNothingLeft(t *testing.T, b *layout) {
	t.Helper()
	if m := fuseMountsUnder(b.base); len(m) > 0 {
		t.Errorf("still mounted: %q", m)
	}
	if !eventually(3*time.Second, func() bool { return len(daemonsFor(b.base)) == 0 }) {
		t.Errorf("unionfsd still running: pids %v", daemonsFor(b.base))
	}
}

// assertOneErrorLine checks the stderr of a failed run.
func assertOneErrorLine(t *testing.T, r result, code int, path, cause string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "unionfsd: ") {
		t.Errorf("stderr = %q, want one line starting with \"unionfsd: \"", r.stderr)
	}
	if !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, cause) {
		t.Errorf("stderr = %q, want it to name %q and say %q", r.stderr, path, cause)
	}
}

// requireRoot skips tests that mount or switch users.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, bind mounts, running as nobody): run go test as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("/dev/fuse missing: modprobe fuse")
	}
}

// mountT makes a test mount (tmpfs or bind) and unmounts it at cleanup.
func mountT(t *testing.T, src, dir, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(src, dir, fstype, flags, data); err != nil {
		t.Fatalf("mount %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
}

// mountBackground mounts with args (background mode) and checks that the mount
// is there the moment the command returns. It returns the daemon's pid.
func mountBackground(t *testing.T, b *layout, args ...string) int {
	t.Helper()
	r := runCLI(t, runOpts{}, args...)
	// Check at once: the command must return only when the mount is up.
	var mst, bst unix.Stat_t
	errM, errB := unix.Stat(b.mnt, &mst), unix.Stat(b.base, &bst)
	if r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Fatalf("unionfsd %q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
	}
	if errM != nil || errB != nil || mst.Dev == bst.Dev {
		t.Fatalf("unionfsd returned before the mount was ready (stat %v %v, dev %d vs %d)", errM, errB, mst.Dev, bst.Dev)
	}
	pids := daemonsFor(b.mnt)
	if len(pids) != 1 {
		t.Fatalf("want one daemon for %s, found %v", b.mnt, pids)
	}
	// A daemon must not hold its starter's terminal or pipes, and writing
	// to a pipe nobody reads would kill it with SIGPIPE.
	for fd := 0; fd <= 2; fd++ {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pids[0], fd)); target != os.DevNull {
			t.Errorf("daemon fd %d is %q, want %s", fd, target, os.DevNull)
		}
	}
	return pids[0]
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
