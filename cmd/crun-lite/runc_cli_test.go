package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runc's global flags, as podman and conmon pass them.
func TestRuncGlobalFlags(t *testing.T) {
	root := t.TempDir()
	code, out, _ := cli(t, root, "--version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "crun-lite version ") || !strings.HasPrefix(lines[1], "spec: 1.") {
		t.Errorf("--version: exit %d, %q; want runc's layout", code, out)
	}
	code, _, errOut := cli(t, root, "--systemd-cgroup", "state", "x")
	if code != exitFailure || !strings.Contains(errOut, "--systemd-cgroup is not supported") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("--systemd-cgroup: exit %d, %q; want one line refusing it", code, errOut)
	}
	if code, _, errOut = cli(t, root, "--log-format", "xml", "state", "x"); code == 0 || !strings.Contains(errOut, "--log-format") {
		t.Errorf("--log-format xml: exit %d, %q", code, errOut)
	}
	// podman reads a failed command's error from the log as one JSON object.
	log := filepath.Join(t.TempDir(), "oci-log")
	code, _, errOut = cli(t, root, "--log", log, "--log-format=json", "state", "nosuch")
	data, _ := os.ReadFile(log)
	var entry struct{ Level, Msg, Time string }
	if err := json.Unmarshal(data, &entry); err != nil || code == 0 || entry.Level != "error" ||
		!strings.Contains(entry.Msg, "nosuch") || entry.Time == "" || !strings.Contains(errOut, "nosuch") {
		t.Errorf("--log json: exit %d, log %q (%v), stderr %q", code, data, err, errOut)
	}
	log = filepath.Join(t.TempDir(), "text-log")
	cli(t, root, "--log", log, "state", "nosuch")
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), `level=error msg="no such container: nosuch"`) {
		t.Errorf("--log text: %q", data)
	}
	code, out, _ = cli(t, root, "features")
	var f struct {
		OCIVersionMax string `json:"ociVersionMax"`
		Linux         struct{ Namespaces []string }
	}
	if err := json.Unmarshal([]byte(out), &f); err != nil || code != 0 || !strings.HasPrefix(f.OCIVersionMax, "1.") ||
		!strings.Contains(strings.Join(f.Linux.Namespaces, " "), "network") {
		t.Errorf("features: exit %d, %q (%v)", code, out, err)
	}
	if code, _, errOut = cli(t, root, "delete", "--force", "nosuch"); code != 0 || errOut != "" {
		t.Errorf("delete --force of a missing container: exit %d, %q; want 0 and quiet, as runc", code, errOut)
	}
	if code, _, _ = cli(t, root, "delete", "nosuch"); code == 0 {
		t.Errorf("delete of a missing container succeeded")
	}
	if code, _, errOut = cli(t, root, "create", "--no-pivot", "x"); code == 0 || !strings.Contains(errOut, "--no-pivot is not supported") {
		t.Errorf("create --no-pivot: exit %d, %q", code, errOut)
	}
}

// create hands the container's process off as runc does: once create has
// returned and the container started, the process is a child of the
// nearest subreaper (conmon, under podman), which reads its exit status.
// --pid-file names it; state, list and kill --all work on it.
func TestRuncCreateHandoff(t *testing.T) {
	e := newEnv(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	setProcess(t, b, "sh", "-c", `sleep 100 & sleep 100 & echo started; wait; exit 5`)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	pidFile := filepath.Join(t.TempDir(), "pid")
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	defer out.Close()
	create := e.cmd(t.Context(), "create", "--bundle", b, "--pid-file", pidFile, "h1")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		t.Fatalf("create: %v", err)
	}
	data, err := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(string(data))
	st, _ := e.ociState("h1")
	if err != nil || pid <= 0 || st.Pid != pid || st.Status != "created" {
		t.Fatalf("--pid-file %q (%v), state %+v", data, err, st)
	}
	var list []struct{ ID, Status, Rootfs string }
	if err := json.Unmarshal([]byte(e.mustRun("list", "--format", "json")), &list); err != nil || len(list) != 1 ||
		list[0].ID != "h1" || list[0].Status != "created" || list[0].Rootfs != filepath.Join(b, "rootfs") {
		t.Errorf("list --format json: %+v (%v)", list, err)
	}
	e.mustRun("start", "h1")
	waitFile(t, out.Name(), "started\n")
	// The two sleeps are not the init: kill --all ends them, and the
	// shell's wait returns.
	e.mustRun("kill", "--all", "h1", "TERM")
	var ws unix.WaitStatus
	done := make(chan error, 1)
	go func() { _, err := unix.Wait4(pid, &ws, 0, nil); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait for the container process %d: %v (not our child after the handoff)", pid, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the container process %d did not exit after kill --all", pid)
	}
	if !ws.Exited() || ws.ExitStatus() != 5 {
		t.Errorf("container exit status %v, want 5 (the shell's, after its sleeps were killed)", ws)
	}
	if st, _ := e.ociState("h1"); st.Status != "stopped" {
		t.Errorf("after exit: %+v", st)
	}
	e.mustRun("delete", "h1")
}

// --console-socket: the pty master arrives over the caller's unix socket
// (SCM_RIGHTS) and the container's stdio is the pty.
func TestRuncConsoleSocket(t *testing.T) {
	e := newEnv(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	editConfig(t, b, func(cfg map[string]any) {
		p := cfg["process"].(map[string]any)
		p["terminal"], p["args"] = true, []any{"sh", "-c", "tty; stty size; exit 0"}
		p["consoleSize"] = map[string]any{"height": 33, "width": 111}
	})
	sockPath := filepath.Join(t.TempDir(), "console.sock")
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: sockPath}); err != nil {
		t.Fatal(err)
	}
	unix.Listen(lfd, 1)
	masterCh := make(chan *os.File, 1)
	go func() {
		cfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			masterCh <- nil
			return
		}
		defer unix.Close(cfd)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := unix.Recvmsg(cfd, make([]byte, 64), oob, 0)
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || perr != nil || len(msgs) != 1 {
			masterCh <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		masterCh <- os.NewFile(uintptr(fds[0]), "master")
	}()
	// Until it execs, the container's process holds create's stdio: a
	// file, so nobody waits for a pipe to close.
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	defer out.Close()
	create := e.cmd(t.Context(), "create", "-b", b, "--console-socket", sockPath, "t1")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		data, _ := os.ReadFile(out.Name())
		t.Fatalf("create --console-socket: %v: %s", err, data)
	}
	var master *os.File
	select {
	case master = <-masterCh:
	case <-time.After(10 * time.Second):
	}
	if master == nil {
		t.Fatal("no pty master came over the console socket")
	}
	defer master.Close()
	e.mustRun("start", "t1")
	master.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(got), "111") {
		n, err := master.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	text := strings.ReplaceAll(string(got), "\r", "")
	if !strings.HasPrefix(text, "/dev/pts/") || !strings.Contains(text, "33 111") {
		t.Errorf("terminal output %q, want a /dev/pts name and the size 33 111", text)
	}
	e.run("delete", "-f", "t1")
}

// A bundle may join existing network and uts namespaces by path; a mount
// namespace cannot be joined and is refused naming the field.
func TestRuncJoinNamespaces(t *testing.T) {
	e := newEnv(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	holder := exec.Command("unshare", "--net", "--uts", "sh", "-c", "hostname joined-uts; sleep 60")
	if err := holder.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	pid := holder.Process.Pid
	var want string
	for i := 0; i < 100; i++ {
		want, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		host, _ := os.Readlink("/proc/self/ns/net")
		if want != "" && want != host {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // for hostname
	setProcess(t, b, "sh", "-c", "readlink /proc/self/ns/net; hostname")
	editConfig(t, b, func(cfg map[string]any) {
		delete(cfg, "hostname")
		l := cfg["linux"].(map[string]any)
		var ns []any
		for _, n := range l["namespaces"].([]any) {
			switch n.(map[string]any)["type"] {
			case "network":
				ns = append(ns, map[string]any{"type": "network", "path": fmt.Sprintf("/proc/%d/ns/net", pid)})
			case "uts":
				ns = append(ns, map[string]any{"type": "uts", "path": fmt.Sprintf("/proc/%d/ns/uts", pid)})
			default:
				ns = append(ns, n)
			}
		}
		l["namespaces"] = ns
	})
	out := e.mustRun("run", "-b", b, "j1")
	if got := strings.Fields(out); len(got) != 2 || got[0] != want || got[1] != "joined-uts" {
		t.Errorf("container printed %q, want %s and joined-uts", out, want)
	}
	editConfig(t, b, func(cfg map[string]any) {
		l := cfg["linux"].(map[string]any)
		l["namespaces"] = append(l["namespaces"].([]any), map[string]any{"type": "mount", "path": fmt.Sprintf("/proc/%d/ns/mnt", pid)})
	})
	if r := e.run("run", "-b", b, "j2"); r.code == 0 || !strings.Contains(r.err, "path: joining an existing mount namespace is not supported") {
		t.Errorf("joining a mount namespace: %v", r)
	}
}

// linux.cgroupsPath: an absolute path from the hierarchies' roots; the
// container's limits are there, and delete removes the dirs.
func TestRuncCgroupsPath(t *testing.T) {
	e := newEnv(t)
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err != nil {
		t.Skip("no cgroup v1 pids hierarchy at /sys/fs/cgroup/pids")
	}
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	parent := fmt.Sprintf("crun-lite-test-%d", os.Getpid())
	t.Cleanup(func() {
		for _, ctrl := range []string{"pids", "memory", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "net_cls", "net_prio", "perf_event", "hugetlb"} {
			unix.Rmdir(filepath.Join("/sys/fs/cgroup", ctrl, parent))
		}
	})
	setProcess(t, b, "sh", "-c", "grep -E ':(pids|cpuset):' /proc/self/cgroup; echo started; sleep 100")
	editConfig(t, b, func(cfg map[string]any) {
		l := cfg["linux"].(map[string]any)
		l["cgroupsPath"] = "/" + parent + "/c1"
		l["resources"] = map[string]any{"pids": map[string]any{"limit": 77}}
	})
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	defer out.Close()
	create := e.cmd(t.Context(), "create", "-b", b, "g1")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		data, _ := os.ReadFile(out.Name())
		t.Fatalf("create: %v: %s", err, data)
	}
	e.mustRun("start", "g1")
	dir := "/sys/fs/cgroup/pids/" + parent + "/c1"
	deadline := time.Now().Add(10 * time.Second)
	var data []byte
	for time.Now().Before(deadline) {
		if data, _ = os.ReadFile(out.Name()); strings.Contains(string(data), "started") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(data), fmt.Sprintf(":pids:/%s/c1", parent)) || !strings.Contains(string(data), fmt.Sprintf(":cpuset:/%s/c1", parent)) {
		t.Errorf("container's cgroups %q, want pids and cpuset at /%s/c1", data, parent)
	}
	if max, _ := os.ReadFile(dir + "/pids.max"); strings.TrimSpace(string(max)) != "77" {
		t.Errorf("%s/pids.max = %q, want 77", dir, max)
	}
	// pause freezes the container's own freezer cgroup and leaves it so.
	freezer := "/sys/fs/cgroup/freezer/" + parent + "/c1/freezer.state"
	e.mustRun("pause", "g1")
	if st, _ := e.ociState("g1"); st.Status != "paused" {
		t.Errorf("after pause: %+v", st)
	}
	if fs, _ := os.ReadFile(freezer); strings.TrimSpace(string(fs)) != "FROZEN" {
		t.Errorf("after pause %s = %q", freezer, fs)
	}
	e.mustRun("resume", "g1")
	if st, _ := e.ociState("g1"); st.Status != "running" {
		t.Errorf("after resume: %+v", st)
	}
	e.mustRun("pause", "g1") // delete -f of a paused container
	e.mustRun("delete", "-f", "g1")
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s left after delete", dir)
	}
}

// After a handoff nobody but `start` listens to the container's process:
// a failure between start and the exec (here the command, there at
// create, is gone) is start's error, as with runc.
func TestRuncStartReportsExecFailure(t *testing.T) {
	e := newEnv(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	cmdPath := filepath.Join(b, "rootfs", "bin", "vanishing")
	if err := os.Symlink("busybox", cmdPath); err != nil {
		t.Fatal(err)
	}
	setProcess(t, b, "/bin/vanishing", "true")
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	defer out.Close()
	create := e.cmd(t.Context(), "create", "-b", b, "v1")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		t.Fatalf("create: %v", err)
	}
	os.Remove(cmdPath)
	r := e.run("start", "v1")
	if r.code == 0 || !strings.Contains(r.err, "/bin/vanishing") || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Errorf("start of a container whose command went away: %v; want a one-line error naming it", r)
	}
	if st, _ := e.ociState("v1"); st.Status != "stopped" {
		t.Errorf("after the failed start: %+v", st)
	}
	e.mustRun("delete", "v1")
}
