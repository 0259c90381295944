package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	staticOnce sync.Once
	staticBin  string
	staticErr  error
)

// forBinaries runs test with the crun-lite of TestMain (linked as `go
// build` links it here: dynamically) and with a static one (CGO_ENABLED=0):
// exec joins the mount namespace at a different step for each.
func forBinaries(t *testing.T, test func(t *testing.T, bin string)) {
	t.Run("dynamic", func(t *testing.T) { test(t, crunBin) })
	staticOnce.Do(func() {
		staticBin = filepath.Join(testTmp, "crun-lite-static")
		cmd := exec.Command(goTool(), "build", "-o", staticBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			staticErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if staticErr != nil {
		t.Fatalf("build a static crun-lite: %v", staticErr)
	}
	t.Run("static", func(t *testing.T) { test(t, staticBin) })
}

// startBundle creates and starts bundle container id running script, with
// hostname exectest, a marker file in its rootfs and a pids limit (so it
// has cgroups of its own); it returns the init's host pid.
func startBundle(t *testing.T, e *env, id, script string) int {
	t.Helper()
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	setProcess(t, b, "sh", "-c", script)
	editConfig(t, b, func(cfg map[string]any) {
		cfg["hostname"] = "exectest"
		linux := cfg["linux"].(map[string]any)
		linux["resources"] = map[string]any{"pids": map[string]any{"limit": 200}}
	})
	if err := os.WriteFile(filepath.Join(b, "rootfs", "marker"), []byte("in-the-rootfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	create := e.cmd(ctx, "create", "-b", b, id)
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		t.Fatalf("create: %v", err)
	}
	e.mustRun("start", id)
	st, ok := e.ociState(id)
	if !ok || st.Status != "running" {
		t.Fatalf("state after start: %+v", st)
	}
	return st.Pid
}

// nsLinks reads the namespace links of pid.
func nsLinks(t *testing.T, pid int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range []string{"mnt", "pid", "net", "ipc", "uts", "cgroup", "user"} {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = l
	}
	return out
}

// execDetached runs `exec -d --pid-file` with args and returns the pid;
// the process is killed at cleanup.
func execDetached(t *testing.T, e *env, args ...string) int {
	t.Helper()
	dir := t.TempDir()
	if e.home != "" { // the rootless test's user writes the pid file
		dir = e.home
	}
	pf := filepath.Join(dir, "pid")
	// The process keeps our stdio: a file, so nobody waits for a pipe.
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.cmd(ctx, append([]string{"exec", "-d", "--pid-file", pf}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		t.Fatalf("exec -d %v: %v: %s", args, err, msg)
	}
	data, err := os.ReadFile(pf)
	if err != nil {
		t.Fatalf("--pid-file: %v", err)
	}
	pid, err := strconv.Atoi(string(data))
	if err != nil || pid <= 0 {
		t.Fatalf("--pid-file holds %q", data)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

func TestExecBundleContainer(t *testing.T) { forBinaries(t, testExecBundleContainer) }

func testExecBundleContainer(t *testing.T, bin string) {
	e := newEnv(t)
	e.bin = bin
	initPid := startBundle(t, e, "x1", "echo started; while true; do sleep 1; done")

	// The container's rootfs, hostname and pid namespace (pid 1 is the init).
	out := e.mustRun("exec", "x1", "sh", "-c", `cat /marker; hostname; tr '\0' ' ' < /proc/1/cmdline; echo; echo $$`)
	got := lines(out)
	if len(got) != 4 || got[0] != "in-the-rootfs" || got[1] != "exectest" || !strings.HasPrefix(got[2], "sh -c echo started") {
		t.Fatalf("exec sees %q", out)
	}
	if pid, _ := strconv.Atoi(got[3]); pid <= 1 || pid > 100 {
		t.Errorf("exec'd shell has pid %q, not one of the container's pid namespace", got[3])
	}

	// Every namespace and cgroup of the init.
	pid := execDetached(t, e, "x1", "sleep", "30")
	want, have := nsLinks(t, initPid), nsLinks(t, pid)
	for n, l := range want {
		if have[n] != l {
			t.Errorf("%s namespace: exec'd process in %s, init in %s", n, have[n], l)
		}
	}
	initCg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", initPid))
	execCg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if string(initCg) != string(execCg) || !strings.Contains(string(initCg), "/crun-lite/x1") {
		t.Errorf("cgroups: exec'd process in\n%s\ninit in\n%s", execCg, initCg)
	}

	// Exit status, --env, --cwd, --user.
	if r := e.run("exec", "x1", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exit 7: %v", r)
	}
	out = e.mustRun("exec", "--env", "FOO=bar", "-e", "HOME=/tmp", "--cwd", "/tmp", "--user", "1000:1001", "-g", "44", "x1",
		"sh", "-c", `echo $FOO $HOME; pwd; id -u; id -G`)
	if got := lines(out); len(got) != 4 || got[0] != "bar /tmp" || got[1] != "/tmp" || got[2] != "1000" || got[3] != "1001 44" {
		t.Errorf("--env --cwd --user -g: %q", out)
	}
	// --cap adds to the container's capabilities.
	capEff := func(args ...string) uint64 {
		out := e.mustRun(append(append([]string{"exec"}, args...), "x1", "grep", "CapEff", "/proc/self/status")...)
		f := strings.Fields(out)
		n, err := strconv.ParseUint(f[len(f)-1], 16, 64)
		if err != nil {
			t.Fatalf("CapEff: %q", out)
		}
		return n
	}
	const sysAdmin = 1 << 21
	if without, with := capEff(), capEff("--cap", "CAP_SYS_ADMIN"); without&sysAdmin != 0 || with != without|sysAdmin {
		t.Errorf("CapEff %x without --cap, %x with --cap CAP_SYS_ADMIN", without, with)
	}

	// --process replaces the container's process settings.
	proc := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(proc, []byte(`{"args": ["sh", "-c", "echo $A; pwd; id -u; id -g; grep NoNewPrivs /proc/self/status"],
		"env": ["A=from-process", "PATH=/bin"], "cwd": "/etc", "user": {"uid": 5, "gid": 6}}`), 0o644)
	out = e.mustRun("exec", "--process", proc, "x1")
	if got := strings.Join(strings.Fields(out), " "); got != "from-process /etc 5 6 NoNewPrivs: 0" {
		t.Errorf("--process: %q", out)
	}
	os.WriteFile(proc, []byte(`{"args": ["true"], "cwd": "/", "apparmorProfile": "x"}`), 0o644)
	if r := e.run("exec", "--process", proc, "x1"); r.code != 125 || !strings.Contains(r.err, "process.apparmorProfile") || len(lines(r.err)) != 1 {
		t.Errorf("--process with apparmorProfile: %v", r)
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"x1", "nosuchcmd"}, 127, "not found"},
		{[]string{"--cwd", "/nonexistent", "x1", "true"}, 125, "/nonexistent"},
		{[]string{"--user", "nosuchuser", "x1", "true"}, 125, "nosuchuser"},
		{[]string{"nosuchcontainer", "true"}, 125, "no such container"},
	} {
		r := e.run(append([]string{"exec"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.err, c.msg) || len(lines(r.err)) != 1 {
			t.Errorf("exec %v: %v; want %d and one line about %q", c.args, r, c.code, c.msg)
		}
	}

	// A stopped container.
	e.mustRun("kill", "x1", "KILL")
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := e.ociState("x1"); st.Status != "stopped" && time.Now().Before(deadline); st, _ = e.ociState("x1") {
		time.Sleep(20 * time.Millisecond)
	}
	if r := e.run("exec", "x1", "true"); r.code != 125 || !strings.Contains(r.err, "not running") || len(lines(r.err)) != 1 {
		t.Errorf("exec in a stopped container: %v", r)
	}
}

// TestExecFdsAndSignals: descriptors of the caller reach the command only
// with --preserve-fds; signals to crun-lite exec reach the command.
func TestExecFdsAndSignals(t *testing.T) {
	e := newEnv(t)
	startBundle(t, e, "x2", "while true; do sleep 1; done")
	leak, err := os.Open("/etc/hostname") // not close-on-exec once passed
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	// The shell's own open descriptors above stdio (no pipes: the shell
	// would hold their ends while it lists).
	probe := `for f in $(seq 3 64); do [ -e /proc/$$/fd/$f ] && echo -n "$f "; done; echo end`
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "x2", "sh", "-c", probe}, "end"},
		{[]string{"exec", "--preserve-fds", "1", "x2", "sh", "-c", probe}, "3 end"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := e.cmd(ctx, c.args...)
		cmd.ExtraFiles = []*os.File{leak}
		out, err := cmd.Output()
		cancel()
		if got := strings.Join(strings.Fields(string(out)), " "); err != nil || got != c.want {
			t.Errorf("%v with fd 3 open: %q (%v), want %q", c.args, out, err, c.want)
		}
	}
	if r := e.run("exec", "--preserve-fds", "5", "x2", "true"); r.code != 125 || !strings.Contains(r.err, "not open") {
		t.Errorf("--preserve-fds of closed descriptors: %v", r)
	}

	cmd, sc := e.background("exec", "x2", "sh", "-c", `trap 'echo term; exit 9' TERM; echo ready; while true; do sleep 0.05; done`)
	waitLine(t, sc, "ready")
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, sc, "term")
	if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 9 {
		t.Errorf("after SIGTERM: %v, want exit 9", err)
	}
}

func TestExecImageContainer(t *testing.T) {
	e := newEnv(t)
	_, sc := e.background("run", "--name", "web", "--hostname", "webhost", "busybox", "sh", "-c", "echo ready; sleep 60")
	waitLine(t, sc, "ready")
	initPid := e.containerPid("web")
	out := e.mustRun("exec", "web", "sh", "-c", `hostname; echo hi > /tmp/from-exec; grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status`)
	initStatus, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", initPid))
	got := lines(out)
	if len(got) != 4 || got[0] != "webhost" {
		t.Fatalf("exec in an image container: %q", out)
	}
	for _, l := range got[1:] {
		if !strings.Contains(string(initStatus), l+"\n") {
			t.Errorf("exec'd process has %q; the init has\n%s", l, initStatus)
		}
	}
	if !strings.Contains(out, "Seccomp:\t2") || !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("no seccomp filter or no_new_privs in the exec'd process: %q", out)
	}
	// The write went through the container's union into its upper dir.
	data, err := os.ReadFile(filepath.Join(e.containerDir("web"), "upper", "tmp", "from-exec"))
	if err != nil || string(data) != "hi\n" {
		t.Errorf("upper/tmp/from-exec: %q, %v", data, err)
	}
	// -t relays a pty of the container's devpts.
	out = e.mustRun("exec", "-t", "web", "sh", "-c", "tty; [ -t 1 ] && echo stdout-is-tty")
	if got := lines(out); len(got) < 2 || !strings.HasPrefix(got[len(got)-2], "/dev/pts/") || got[len(got)-1] != "stdout-is-tty" {
		t.Errorf("exec -t: %q", out)
	}
	if r := e.run("exec", "-d", "-t", "web", "true"); r.code != 125 || !strings.Contains(r.err, "--console-socket") {
		t.Errorf("-d -t without a console socket: %v", r)
	}

	// Under --init, PID 1 is our reaper: its namespaces are the container's.
	_, sc = e.background("run", "--init", "--name", "ini", "--hostname", "inihost", "busybox", "sh", "-c", "echo ready; sleep 60")
	waitLine(t, sc, "ready")
	out = e.mustRun("exec", "ini", "sh", "-c", "hostname; ls /; ps -o comm | grep -c sleep")
	if got := lines(out); len(got) < 3 || got[0] != "inihost" || got[len(got)-1] != "1" || !strings.Contains(out, "etc") {
		t.Errorf("exec in an --init container: %q", out)
	}
}

// TestExecConsoleSocket: with --console-socket the pty master goes to the
// socket (runc's protocol) and crun-lite relays nothing.
func TestExecConsoleSocket(t *testing.T) {
	e := newEnv(t)
	startBundle(t, e, "x3", "while true; do sleep 1; done")
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	masters := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			close(masters)
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			close(masters)
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		masters <- os.NewFile(uintptr(fds[0]), "master")
	}()
	// podman's way: a Process file with terminal and consoleSize.
	proc := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(proc, []byte(`{"terminal": true, "consoleSize": {"height": 33, "width": 111}, "cwd": "/",
		"args": ["sh", "-c", "tty; stty size; echo via-socket; sleep 30"], "env": ["PATH=/bin"]}`), 0o644)
	pid := execDetached(t, e, "--process", proc, "--console-socket", sock, "x3")
	var master *os.File
	select {
	case master = <-masters:
	case <-time.After(10 * time.Second):
	}
	if master == nil {
		t.Fatal("no pty master on the console socket")
	}
	defer master.Close()
	var got string
	buf := make([]byte, 256)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(got, "via-socket") && time.Now().Before(deadline) {
		n, err := master.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.HasPrefix(got, "/dev/pts/") || !strings.Contains(got, "33 111") || !strings.Contains(got, "via-socket") {
		t.Errorf("pty output %q", got)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Errorf("detached process %d is gone: %v", pid, err)
	}
}

// TestExecRootlessContainer: an unprivileged user's exec joins the user
// namespace of the user's container too (setns into it needs the fork).
func TestExecRootlessContainer(t *testing.T) { forBinaries(t, testExecRootlessContainer) }

func testExecRootlessContainer(t *testing.T, bin string) {
	needContainers(t)
	cred, home, _ := testUser(t)
	e := &env{t: t, store: filepath.Join(home, "store"), cred: cred, home: home, bin: bin}
	e.importImage(busyboxTar)
	t.Cleanup(e.cleanup)
	fuseMode(t, 0o666)
	_, sc := e.background("run", "--name", "rl", "busybox", "sh", "-c", "echo ready; sleep 60")
	waitLine(t, sc, "ready")
	initPid := e.containerPid("rl")
	initMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", initPid))
	out := e.mustRun("exec", "rl", "sh", "-c", "id -u; cat /proc/self/uid_map; echo x > /root/from-exec")
	if got := lines(out); len(got) < 2 || got[0] != "0" || strings.Join(strings.Fields(strings.Join(got[1:], " ")), " ") != strings.Join(strings.Fields(string(initMap)), " ") {
		t.Errorf("exec in a rootless container: %q; the init's uid_map is %q", out, initMap)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(e.containerDir("rl"), "upper", "root", "from-exec"), &st); err != nil || st.Uid != cred.Uid {
		t.Errorf("a file the exec'd root wrote: %v, uid %d; want the user's %d", err, st.Uid, cred.Uid)
	}
	pid := execDetached(t, e, "rl", "sleep", "30")
	want, have := nsLinks(t, initPid), nsLinks(t, pid)
	for n, l := range want {
		if have[n] != l {
			t.Errorf("%s namespace: exec'd process in %s, init in %s", n, have[n], l)
		}
	}
}

// attackerScript watches the container's pid namespace for crun-lite's exec
// stage and tries what CVE-2019-5736 and CVE-2016-9962 did: reach the
// binary behind /proc/PID/exe (and write to it) and the host's filesystem
// through /proc/PID/root of any of its threads.
const attackerScript = `echo started
s=__crun-lite-stage # not the whole pattern: it would match this shell
stage() { case "$(tr '\0' ' ' < $1/cmdline 2>/dev/null)" in *"$s exec"*) return 0;; esac; return 1; }
while true; do
  for p in /proc/[0-9]*; do
    stage $p || continue
    x=$(readlink $p/exe)
    r=$(ls $p/root/ $p/task/*/root/ 2>/dev/null | tr '\n' ' ')
    (echo x >> $p/exe) 2>/dev/null && w=wrote-exe || w=
    # Only what was seen while it still was the stage (not the command).
    stage $p && printf 'exe %s\nroot %s\n%s\n' "$x" "$r" "$w" >> /log
  done
done`

// TestExecStageUnreachable: a container root granted CAP_SYS_PTRACE (so
// non-dumpable is no obstacle) sees, while execs come and go, only a
// sealed memfd behind the stage's exe and only its own root behind the
// stage's roots (static binary: the stage never runs at the host's root).
// A dynamically linked crun-lite, whose stage starts at the host's root,
// refuses such a container.
func TestExecStageUnreachable(t *testing.T) {
	e := newEnv(t)
	forBinaries(t, func(t *testing.T, bin string) {
		e.bin = bin
		b := makeBundle(t, e)
		e.mustRun("spec", "-b", b)
		setProcess(t, b, "sh", "-c", attackerScript)
		os.WriteFile(filepath.Join(b, "rootfs", "marker"), nil, 0o644)
		editConfig(t, b, func(cfg map[string]any) {
			cfg["root"].(map[string]any)["readonly"] = false // for /log
			caps := cfg["process"].(map[string]any)["capabilities"].(map[string]any)
			for _, set := range []string{"bounding", "effective", "permitted"} {
				caps[set] = append(caps[set].([]any), "CAP_SYS_PTRACE")
			}
		})
		out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
		defer out.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		create := e.cmd(ctx, "create", "-b", b, "atk")
		create.Stdout, create.Stderr = out, out
		if err := create.Run(); err != nil {
			t.Fatalf("create: %v", err)
		}
		t.Cleanup(func() { e.run("delete", "-f", "atk") }) // before the bundle goes
		e.mustRun("start", "atk")
		waitFile(t, out.Name(), "started\n")
		if bin == crunBin {
			r := e.run("exec", "atk", "true")
			if r.code != 125 || !strings.Contains(r.err, "CAP_SYS_PTRACE") || len(lines(r.err)) != 1 {
				t.Errorf("dynamic crun-lite, container with CAP_SYS_PTRACE: %v; want a one-line refusal", r)
			}
			if data, _ := os.ReadFile(filepath.Join(b, "rootfs", "log")); len(data) > 0 {
				t.Errorf("the refused exec started a stage: %s", data)
			}
			return
		}
		seen, execs := 0, 0
		for ; execs < 40 && seen < 3; execs++ {
			e.mustRun("exec", "atk", "true")
			data, _ := os.ReadFile(filepath.Join(b, "rootfs", "log"))
			seen = strings.Count(string(data), "exe ")
		}
		data, _ := os.ReadFile(filepath.Join(b, "rootfs", "log"))
		if seen == 0 {
			t.Fatalf("the attacker never saw an exec stage in 40 execs: the test proves nothing")
		}
		for _, l := range lines(string(data)) {
			switch f := strings.Fields(l); {
			case f[0] == "exe" && len(f) > 1 && !strings.HasPrefix(f[1], "/memfd:"):
				t.Errorf("the stage's exe is a file: %q", l)
			case f[0] == "root" && len(f) > 1 && (strings.Contains(l, " work ") || !strings.Contains(l, " marker ")):
				t.Errorf("the stage's root shows a tree other than the container's: %q", l)
			case f[0] == "wrote-exe":
				t.Errorf("the attacker wrote to the stage's exe")
			}
		}
		t.Logf("the attacker saw %d stages in %d execs:\n%s", seen, execs, data)
	})
}
