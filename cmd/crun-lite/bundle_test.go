package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// makeBundle makes a bundle dir whose rootfs is a copy of busybox's layer.
func makeBundle(t *testing.T, e *env) string {
	t.Helper()
	b := t.TempDir()
	if out, err := exec.Command("cp", "-a", e.layerDir(), filepath.Join(b, "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("cp rootfs: %v: %s", err, out)
	}
	return b
}

// setProcess rewrites the bundle's process: args, no terminal.
func setProcess(t *testing.T, bundle string, args ...string) {
	t.Helper()
	p := filepath.Join(bundle, "config.json")
	var cfg map[string]any
	data, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(data, &cfg) != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"], proc["args"] = false, args
	data, _ = json.MarshalIndent(cfg, "", "\t")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ociState runs `state` and decodes it; ok is false when the container is gone.
func (e *env) ociState(id string) (st struct {
	Status string
	Pid    int
	Bundle string
}, ok bool) {
	r := e.run("state", id)
	if r.code != 0 {
		return st, false
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		e.t.Fatalf("state %s: %v: %q", id, err, r.out)
	}
	return st, true
}

func TestBundleLifecycle(t *testing.T) {
	e := newEnv(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	if r := e.run("spec", "-b", b); r.code == 0 || !strings.Contains(r.err, "exists") {
		t.Errorf("spec over an existing config.json: %v", r)
	}
	setProcess(t, b, "sh", "-c", `echo started; trap 'echo term; exit 3' TERM; while true; do sleep 0.05; done`)

	// create's stdio becomes the container's; a file, so nobody waits on a pipe.
	outPath := filepath.Join(t.TempDir(), "out")
	out, _ := os.Create(outPath)
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	create := e.cmd(ctx, "create", "-b", b, "b1")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		data, _ := os.ReadFile(outPath)
		t.Fatalf("create: %v: %s", err, data)
	}
	st, ok := e.ociState("b1")
	if !ok || st.Status != "created" || st.Pid <= 0 || st.Bundle != b {
		t.Fatalf("after create: %+v (ok %v)", st, ok)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", st.Pid)); err != nil {
		t.Errorf("created container's init (pid %d) is not running: %v", st.Pid, err)
	}
	if data, _ := os.ReadFile(outPath); len(data) != 0 {
		t.Errorf("the command ran before start: %q", data)
	}
	if r := e.run("create", "-b", b, "b1"); r.code == 0 || !strings.Contains(r.err, "already in use") {
		t.Errorf("second create with the same ID: %v", r)
	}
	e.mustRun("start", "b1")
	if st, _ := e.ociState("b1"); st.Status != "running" {
		t.Errorf("after start: %+v", st)
	}
	waitFile(t, outPath, "started\n")
	if r := e.run("delete", "b1"); r.code == 0 || !strings.Contains(r.err, "is running") {
		t.Errorf("delete of a running container: %v", r)
	}
	e.mustRun("kill", "b1", "TERM")
	deadline := time.Now().Add(10 * time.Second)
	for st, _ = e.ociState("b1"); st.Status != "stopped" && time.Now().Before(deadline); st, _ = e.ociState("b1") {
		time.Sleep(20 * time.Millisecond)
	}
	if st.Status != "stopped" || st.Pid != 0 {
		t.Errorf("after kill: %+v", st)
	}
	waitFile(t, outPath, "started\nterm\n")
	if r := e.run("start", "b1"); r.code == 0 {
		t.Errorf("start of a stopped container: %v", r)
	}
	e.mustRun("delete", "b1")
	if _, ok := e.ociState("b1"); ok {
		t.Errorf("state after delete still finds b1")
	}
}

// waitFile waits until the file holds want.
func waitFile(t *testing.T, p, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(p)
		if string(data) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q, want %q", p, data, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bundleScript prints what should be equal under runc and crun-lite.
const bundleScript = `echo hello; id; hostname; readlink /proc/1/exe
grep -E '^(Cap|NoNewPrivs)' /proc/self/status
ls /dev | tr '\n' ' '; echo; ulimit -n
cut -d' ' -f5,6 /proc/self/mountinfo | grep -v /sys/fs/cgroup | sort
touch /x 2>/dev/null || echo root-ro`

func TestBundleMatchesRunc(t *testing.T) {
	e := newEnv(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed: apt-get install runc")
	}
	b := makeBundle(t, e)
	spec := exec.Command(runc, "spec")
	spec.Dir = b
	if out, err := spec.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	setProcess(t, b, "sh", "-c", bundleScript)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, err := exec.CommandContext(ctx, runc, "--root", t.TempDir(), "run", "-b", b, "cmp-runc").CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v: %s", err, want)
	}
	got := e.mustRun("run", "-b", b, "cmp-crun")
	if got != string(want) {
		t.Errorf("crun-lite and runc differ\ncrun-lite:\n%s\nrunc:\n%s", got, want)
	}
	if n := e.containerCount(); n != 0 {
		t.Errorf("run -b left %d containers (runc run deletes its container)", n)
	}
}

func TestBundleFromUmoci(t *testing.T) {
	e := newEnv(t)
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("umoci not installed: apt-get install umoci")
	}
	dir := t.TempDir()
	img, err := imagetest.BusyboxSpec()
	if err != nil {
		t.Fatal(err)
	}
	img.Names, img.Cmd = []string{"busybox:latest"}, []string{"sh", "-c", "echo from-umoci; id -u"}
	if err := imagetest.WriteOCILayout(filepath.Join(dir, "oci"), img); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "bundle")
	if out, err := exec.Command(umoci, "unpack", "--image", filepath.Join(dir, "oci")+":latest", b).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v: %s", err, out)
	}
	// umoci's config asks for a terminal: output comes through a pty.
	if got := e.mustRun("run", "-b", b, "umoci-1"); strings.Join(lines(got), "|") != "from-umoci|0" {
		t.Errorf("umoci bundle: %q", got)
	}
}

// editConfig rewrites the bundle's config.json through edit.
func editConfig(t *testing.T, bundle string, edit func(cfg map[string]any)) {
	t.Helper()
	p := filepath.Join(bundle, "config.json")
	var cfg map[string]any
	data, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(data, &cfg) != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	edit(cfg)
	data, _ = json.MarshalIndent(cfg, "", "\t")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostDisk returns the major and minor of a block device of the host that
// root can read: the root filesystem's disk when it is one.
func hostDisk(t *testing.T) (int, int) {
	t.Helper()
	var st syscall.Stat_t
	cands := []string{}
	if syscall.Stat("/", &st) == nil {
		cands = append(cands, fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	}
	ents, _ := os.ReadDir("/sys/dev/block")
	for _, d := range ents {
		cands = append(cands, d.Name())
	}
	for _, c := range cands {
		var maj, min int
		if _, err := fmt.Sscanf(c, "%d:%d", &maj, &min); err != nil {
			continue
		}
		if _, err := os.Stat("/sys/dev/block/" + c); err != nil {
			continue
		}
		node := filepath.Join(t.TempDir(), "disk")
		if unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(maj), uint32(min)))) != nil {
			continue
		}
		f, err := os.Open(node)
		if err != nil {
			continue
		}
		n, _ := f.Read(make([]byte, 512))
		f.Close()
		if n == 512 {
			return maj, min
		}
	}
	t.Skip("no readable block device on this host")
	return 0, 0
}

// A bundle that denies all devices but grants CAP_MKNOD: the container may
// make a node of the host's disk, but not open it; the standard devices
// keep working. (The test only ever reads the disk: on a runtime without
// the rules, a write would land on the host's device.)
func TestBundleDeviceRules(t *testing.T) {
	e := newEnv(t)
	maj, min := hostDisk(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	setProcess(t, b, "sh", "-c", fmt.Sprintf(`mknod /dev/hostdisk b %d %d && echo mknod-ok
head -c 512 /dev/hostdisk >/dev/null && echo disk-read
echo x >/dev/null && echo null-ok
head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c
mknod /dev/null2 c 1 3 && echo x >/dev/null2 && echo null2-ok
true`, maj, min))
	editConfig(t, b, func(cfg map[string]any) {
		caps := cfg["process"].(map[string]any)["capabilities"].(map[string]any)
		for _, set := range []string{"bounding", "effective", "permitted"} {
			caps[set] = append(caps[set].([]any), "CAP_MKNOD")
		}
		res := cfg["linux"].(map[string]any)["resources"].(map[string]any)
		if devs := res["devices"].([]any); len(devs) != 1 || devs[0].(map[string]any)["allow"] != false {
			t.Fatalf("spec should deny all devices: %v", devs)
		}
	})
	r := e.run("run", "-b", b, "devrules")
	want := "mknod-ok\nnull-ok\n4\n4\nnull2-ok\n"
	if r.out != want || !strings.Contains(r.err, "/dev/hostdisk: Operation not permitted") {
		t.Errorf("device rules: %v; want stdout %q and EPERM on opening the disk", r, want)
	}
	// The rules are the container's: the host still reads the disk.
	hostDisk(t)
}

// Fields the runtime cannot honour are errors naming the field, for run -b
// and create, and nothing is created or run.
func TestBundleUnsupportedFieldsRefused(t *testing.T) {
	e := newEnv(t)
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	marker := filepath.Join(t.TempDir(), "ran")
	setProcess(t, b, "sh", "-c", "echo ran")
	cases := []struct {
		field string
		edit  func(cfg map[string]any)
	}{
		{"hooks.prestart[1].path", func(cfg map[string]any) {
			cfg["hooks"] = map[string]any{"prestart": []any{map[string]any{"path": "/bin/touch", "args": []any{"touch", marker}},
				map[string]any{"path": "bin/true"}}}
		}},
		{"linux.personality", func(cfg map[string]any) {
			cfg["linux"].(map[string]any)["personality"] = map[string]any{"domain": "LINUX32"}
		}},
		{"linux.seccomp.listenerPath", func(cfg map[string]any) {
			cfg["linux"].(map[string]any)["seccomp"] = map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock"}
		}},
		{"linux.resources.blockIO", func(cfg map[string]any) {
			cfg["linux"].(map[string]any)["resources"].(map[string]any)["blockIO"] = map[string]any{"weight": 10}
		}},
	}
	for _, tc := range cases {
		orig, _ := os.ReadFile(filepath.Join(b, "config.json"))
		editConfig(t, b, tc.edit)
		want := filepath.Join(b, "config.json") + ": " + tc.field + ": "
		for _, args := range [][]string{{"run", "-b", b, "refused"}, {"create", "-b", b, "refused"}} {
			r := e.run(args...)
			code := 125 // create exits 1 on every error, as runc does
			if args[0] == "create" {
				code = 1
			}
			if r.code != code || !strings.Contains(r.err, want) || len(lines(r.err)) != 1 || r.out != "" {
				t.Errorf("%s with %s: %v; want exit %d and one line with %q", args[0], tc.field, r, code, want)
			}
		}
		if n := e.containerCount(); n != 0 {
			t.Errorf("%s: %d containers left", tc.field, n)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("%s: the hook ran", tc.field)
		}
		os.WriteFile(filepath.Join(b, "config.json"), orig, 0o644)
	}
}
