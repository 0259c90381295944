package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/runtime/seccomp"
)

// probeScript makes the calls the seccomp tests look at; every line's
// result is printed, so that two runs can be compared as text.
const probeScript = `grep Seccomp: /proc/self/status
busybox unshare -U true 2>&1; echo unshare=$?
mkdir /dev/shm/d 2>&1; echo mkdir=$?
busybox linux32 true 2>&1; echo linux32=$?
busybox linux64 true 2>&1; echo linux64=$?
busybox nc ::1 1 2>&1; echo nc6=$?
ls / >/dev/null && cat /proc/self/status >/dev/null && echo ordinary-ok`

func writeProfile(t *testing.T, profile string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(p, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunSeccompDefault(t *testing.T) {
	e := newEnv(t)
	// docker's default profile: filter mode, no nested user namespace
	// (a way to mount and reach kernel code a container should not).
	out := e.mustRun("run", "--rm", "busybox:latest", "sh", "-c", probeScript)
	for _, want := range []string{"Seccomp:\t2\n", "unshare(0x10000000): Operation not permitted\nunshare=1\n",
		"mkdir=0\n", "linux32=0\n", "linux64=0\n", "ordinary-ok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("default profile: want %q in\n%s", want, out)
		}
	}
	r := e.run("run", "--rm", "busybox:latest", "busybox", "unshare", "-U", "-r", "-m", "busybox", "mount", "-t", "tmpfs", "none", "/tmp")
	if r.code == 0 || !strings.Contains(r.err, "Operation not permitted") {
		t.Errorf("nested user namespace and mount under the default profile: %v", r)
	}
	// unconfined: no filter, and the same commands work.
	out = e.mustRun("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox:latest", "sh", "-c", "grep Seccomp: /proc/self/status; busybox unshare -U -r -m busybox mount -t tmpfs none /tmp && echo mounted")
	if out != "Seccomp:\t0\nmounted\n" {
		t.Errorf("unconfined: %q", out)
	}
}

func TestRunSeccompProfileFile(t *testing.T) {
	e := newEnv(t)
	mkdirDenied := writeProfile(t, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`)
	out := e.mustRun("run", "--rm", "--security-opt", "seccomp="+mkdirDenied, "busybox:latest", "sh", "-c", probeScript)
	for _, want := range []string{"Seccomp:\t2\n", "unshare=0\n", "mkdir: can't create directory '/dev/shm/d': Operation not permitted\nmkdir=1\n",
		"linux32=0\n", "ordinary-ok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("mkdir profile: want %q in\n%s", want, out)
		}
	}
	// Argument conditions: personality(PER_LINUX32) and AF_INET6 sockets
	// are refused, personality(PER_LINUX) and AF_INET ones are not.
	args := writeProfile(t, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
		{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":10,"op":"SCMP_CMP_EQ"}]},
		{"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`)
	out = e.mustRun("run", "--rm", "--security-opt", "seccomp="+args, "busybox:latest", "sh", "-c", probeScript+"\nbusybox nc 127.0.0.1 1 2>&1; true")
	for _, want := range []string{"linux32: personality(0x8): Operation not permitted\nlinux32=1\n", "linux64=0\n",
		"nc: socket: Address family not supported by protocol\nnc6=1\n", "mkdir=0\n", "Connection refused\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("argument profile: want %q in\n%s", want, out)
		}
	}
	// Bad profiles and options: one line naming the problem, exit 125,
	// no container left behind.
	bad := writeProfile(t, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_EXPLODE"}]}`)
	notify := writeProfile(t, `{"defaultAction":"SCMP_ACT_NOTIFY"}`)
	for _, c := range []struct{ opt, want string }{
		{"seccomp=" + bad, "seccomp profile " + bad + `: syscalls[0].action: unknown action "SCMP_ACT_EXPLODE"`},
		{"seccomp=" + notify, "seccomp profile " + notify + ": defaultAction: SCMP_ACT_NOTIFY: seccomp user notification is not supported"},
		{"seccomp=/no/such/profile", "seccomp profile /no/such/profile: no such file or directory"},
		{"apparmor=unconfined", "--security-opt apparmor=unconfined: want seccomp=unconfined or seccomp=FILE"},
	} {
		r := e.run("run", "--rm", "--security-opt", c.opt, "busybox:latest", "true")
		if r.code != 125 || r.err != "crun-lite run: "+c.want+"\n" {
			t.Errorf("--security-opt %s: %v, want exit 125 with %q", c.opt, r, c.want)
		}
	}
	if n := e.containerCount(); n != 0 {
		t.Errorf("%d containers left", n)
	}
}

// setSeccomp puts a linux.seccomp and process.noNewPrivileges into the
// bundle's config.json.
func setSeccomp(t *testing.T, bundle string, sc any, noNewPrivs bool) {
	t.Helper()
	p := filepath.Join(bundle, "config.json")
	var cfg map[string]any
	data, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(data, &cfg) != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	cfg["linux"].(map[string]any)["seccomp"] = sc
	cfg["process"].(map[string]any)["noNewPrivileges"] = noNewPrivs
	data, _ = json.MarshalIndent(cfg, "", "\t")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBundleSeccompMatchesRunc runs bundles with linux.seccomp under runc
// (libseccomp's compiler) and crun-lite: the calls must fare the same.
func TestBundleSeccompMatchesRunc(t *testing.T) {
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
	setProcess(t, b, "sh", "-c", "grep NoNewPrivs: /proc/self/status\n"+probeScript)
	dflt, err := seccomp.Default([]string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"})
	if err != nil {
		t.Fatal(err)
	}
	custom := map[string]any{
		"defaultAction": "SCMP_ACT_ALLOW", "architectures": []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"},
		"syscalls": []map[string]any{
			{"names": []string{"mkdir", "mkdirat"}, "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
			{"names": []string{"socket"}, "action": "SCMP_ACT_ERRNO", "errnoRet": 97, "args": []map[string]any{{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}}},
			{"names": []string{"personality"}, "action": "SCMP_ACT_ERRNO", "args": []map[string]any{{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}}},
			{"names": []string{"unshare"}, "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": []map[string]any{{"index": 0, "value": 0x10000000, "valueTwo": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}}},
		},
	}
	// Without no_new_privs the filter goes on before the capabilities
	// drop; it must then allow what follows, as under runc.
	for _, c := range []struct {
		name       string
		sc         any
		noNewPrivs bool
	}{{"docker default", dflt, true}, {"custom", custom, true}, {"docker default without no_new_privs", dflt, false}} {
		name := c.name
		setSeccomp(t, b, c.sc, c.noNewPrivs)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		want, err := exec.CommandContext(ctx, runc, "--root", t.TempDir(), "run", "-b", b, "sc-runc").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: runc run: %v: %s", name, err, want)
		}
		got := e.mustRun("run", "-b", b, "sc-crun")
		if got != string(want) {
			t.Errorf("%s: crun-lite and runc differ\ncrun-lite:\n%s\nrunc:\n%s", name, got, want)
		}
		if !strings.Contains(got, "Seccomp:\t2") || strings.Contains(got, "NoNewPrivs:\t1") != c.noNewPrivs {
			t.Errorf("%s: no filter:\n%s", name, got)
		}
	}
	// What cannot be honoured stops the run, naming the field.
	for _, c := range []struct {
		sc   map[string]any
		want string
	}{
		{map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}, "linux.seccomp.listenerPath: seccomp user notification is not supported"},
		{map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []map[string]any{{"names": []string{"mkdir"}, "action": "SCMP_ACT_SOMETIMES"}}}, `linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_SOMETIMES"`},
		{map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "flags": []string{"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}}, "linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs seccomp user notification"},
		{map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []map[string]any{{"names": []string{"mkdir"}, "action": "SCMP_ACT_ERRNO", "args": []map[string]any{{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}}}}}, `linux.seccomp.syscalls[0].args[0]: op: unknown operator "SCMP_CMP_ABOUT"`},
	} {
		setSeccomp(t, b, c.sc, true)
		r := e.run("run", "-b", b, "sc-bad")
		want := "crun-lite run: " + filepath.Join(b, "config.json") + ": " + c.want
		if r.code == 0 || !strings.HasPrefix(r.err, want) || strings.Count(r.err, "\n") != 1 {
			t.Errorf("%v: %v, want one line starting %q", c.sc, r, want)
		}
	}
	if n := e.containerCount(); n != 0 {
		t.Errorf("%d containers left", n)
	}
}
