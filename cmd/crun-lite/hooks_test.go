package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// OCI hooks in bundles: each test hook writes its stdin (the state), its
// environment, its argv and its namespaces to files of a test dir, and
// appends its kind to an order file. The container sees the test dir as
// /hookout.

// recordHook is a hook that records itself into dir (as the hook sees it)
// with sh at path; argv0 is its args[0].
func recordHook(path, argv0, dir, kind, extra string) map[string]any {
	script := fmt.Sprintf(`cat > %[1]s/%[2]s.state; env > %[1]s/%[2]s.env; tr '\0' ' ' < /proc/$$/cmdline > %[1]s/%[2]s.argv
readlink /proc/self/ns/mnt /proc/self/ns/pid > %[1]s/%[2]s.ns; echo %[2]s >> %[1]s/order; %[3]s`, dir, kind, extra)
	return map[string]any{"path": path, "args": []any{argv0, "-c", script}, "env": []any{"HOOK_KIND=" + kind}, "timeout": 10}
}

// hookBundle makes a bundle running script whose hooks (kind -> list)
// come from hooks, with the returned dir bound at /hookout.
func hookBundle(t *testing.T, e *env, script string, hooks func(dir string) map[string]any) (bundle, dir string) {
	t.Helper()
	bundle = makeBundle(t, e)
	e.mustRun("spec", "-b", bundle)
	setProcess(t, bundle, "sh", "-c", script)
	dir = t.TempDir()
	editConfig(t, bundle, func(cfg map[string]any) {
		cfg["hooks"] = hooks(dir)
		cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{"destination": "/hookout", "type": "bind",
			"source": dir, "options": []any{"rbind", "rw"}})
		cfg["annotations"] = map[string]any{"test.hooks": "yes"}
	})
	return bundle, dir
}

// allHooks records every kind; extra adds commands to one kind's hook.
func allHooks(extra map[string]string) func(dir string) map[string]any {
	return func(dir string) map[string]any {
		h := map[string]any{}
		for _, kind := range []string{"prestart", "createRuntime", "createContainer", "poststart", "poststop"} {
			h[kind] = []any{recordHook("/bin/sh", "hook-"+kind, dir, kind, extra[kind])}
		}
		// Resolved and run in the container: its busybox wants argv0 sh.
		h["startContainer"] = []any{recordHook("/bin/sh", "sh", "/hookout", "startContainer", extra["startContainer"])}
		return h
	}
}

type hookState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

func readHookState(t *testing.T, dir, kind string) hookState {
	t.Helper()
	var st hookState
	data, err := os.ReadFile(filepath.Join(dir, kind+".state"))
	if err != nil || json.Unmarshal(data, &st) != nil {
		t.Fatalf("%s hook state: %v: %q", kind, err, data)
	}
	return st
}

func readLines(t *testing.T, p string) []string {
	t.Helper()
	data, _ := os.ReadFile(p)
	return lines(string(data))
}

// checkHookState checks the state a hook got on stdin.
func checkHookState(t *testing.T, dir, kind, id, bundle, status string, pid int) {
	t.Helper()
	st := readHookState(t, dir, kind)
	if st.OCIVersion == "" || st.ID != id || st.Bundle != bundle || st.Status != status || st.Pid != pid ||
		st.Annotations["test.hooks"] != "yes" {
		t.Errorf("%s hook got %+v; want id %s, bundle %s, status %s, pid %d, the annotation", kind, st, id, bundle, status, pid)
	}
	env := readLines(t, filepath.Join(dir, kind+".env"))
	if !contains(env, "HOOK_KIND="+kind) || containsPrefix(env, "TESTVAR=") {
		t.Errorf("%s hook environment %q: want HOOK_KIND=%s and nothing of crun-lite's", kind, env, kind)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func containsPrefix(list []string, p string) bool {
	for _, l := range list {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

func nsOf(t *testing.T, p string) []string {
	t.Helper()
	mnt, err1 := os.Readlink(p + "/mnt")
	pid, err2 := os.Readlink(p + "/pid")
	if err1 != nil || err2 != nil {
		t.Fatalf("namespaces of %s: %v %v", p, err1, err2)
	}
	return []string{mnt, pid}
}

// cgroupDirs lists the cgroup dirs crun-lite made for container id.
func cgroupDirs(id string) []string {
	a, _ := filepath.Glob("/sys/fs/cgroup/*/crun-lite/" + id)
	b, _ := filepath.Glob("/sys/fs/cgroup/crun-lite/" + id)
	return append(a, b...)
}

// checkNothingLeft checks that container id left no container dir, mount,
// process or cgroup.
func checkNothingLeft(t *testing.T, e *env, id string, dirs ...string) {
	t.Helper()
	if n := e.containerCount(); n != 0 {
		t.Errorf("%d container dirs left", n)
	}
	if _, ok := e.ociState(id); ok {
		t.Errorf("state still finds %s", id)
	}
	for _, d := range append(dirs, e.store) {
		if m := mountsUnder(d); len(m) > 0 {
			t.Errorf("mounts left under %s: %v", d, m)
		}
	}
	if p := stageProcs(e.store); len(p) > 0 {
		t.Errorf("processes left: %v", p)
	}
	if c := cgroupDirs(id); len(c) > 0 {
		t.Errorf("cgroup dirs left: %v", c)
	}
}

// create, start and delete run the six kinds in lifecycle order, each in
// its namespace with the state of its stage.
func TestBundleHooksLifecycle(t *testing.T) {
	e := newEnv(t)
	procScript := `pid=$(sed 's/.*"pid":\([0-9]*\).*/\1/' %[1]s/poststart.state); tr '\0' ' ' < /proc/$pid/cmdline > %[1]s/poststart.proc`
	b, dir := hookBundle(t, e, "echo process >> /hookout/order; exec sleep 1", func(d string) map[string]any {
		return allHooks(map[string]string{"poststart": fmt.Sprintf(procScript, d)})(d)
	})
	if r := e.create(b, "h1"); r.code != 0 {
		t.Fatalf("create: %v", r)
	}
	st, ok := e.ociState("h1")
	if !ok || st.Status != "created" {
		t.Fatalf("after create: %+v", st)
	}
	if got := readLines(t, filepath.Join(dir, "order")); strings.Join(got, " ") != "prestart createRuntime createContainer" {
		t.Errorf("hooks run by create: %q", got)
	}
	if len(cgroupDirs("h1")) == 0 {
		t.Errorf("no cgroup dir for h1: the leak checks below would prove nothing")
	}
	for _, kind := range []string{"prestart", "createRuntime"} {
		checkHookState(t, dir, kind, "h1", b, "created", st.Pid)
		if argv, _ := os.ReadFile(filepath.Join(dir, kind+".argv")); !strings.HasPrefix(string(argv), "hook-"+kind+" -c cat > ") {
			t.Errorf("%s hook argv %q: want args[0] as argv[0]", kind, argv)
		}
	}
	checkHookState(t, dir, "createContainer", "h1", b, "created", 1)
	host, container := nsOf(t, "/proc/self/ns"), nsOf(t, fmt.Sprintf("/proc/%d/ns", st.Pid))
	if ns := readLines(t, filepath.Join(dir, "createRuntime.ns")); ns[1] != host[1] || ns[0] == container[0] {
		t.Errorf("createRuntime ran in namespaces %q; want the runtime's pid namespace %s, not the container's mount namespace %s", ns, host[1], container[0])
	}
	if ns := readLines(t, filepath.Join(dir, "createContainer.ns")); strings.Join(ns, " ") != strings.Join(container, " ") {
		t.Errorf("createContainer ran in namespaces %q; want the container's %q", ns, container)
	}

	e.mustRun("start", "h1")
	checkHookState(t, dir, "startContainer", "h1", b, "created", 1)
	checkHookState(t, dir, "poststart", "h1", b, "running", st.Pid)
	// poststart came after the exec: the pid it got runs the process.
	if proc, _ := os.ReadFile(filepath.Join(dir, "poststart.proc")); !strings.HasPrefix(string(proc), "sh -c echo process") && !strings.HasPrefix(string(proc), "sleep 1") {
		t.Errorf("poststart saw pid %d running %q, not the container's process", st.Pid, proc)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st, _ = e.ociState("h1"); st.Status != "stopped" && time.Now().Before(deadline); st, _ = e.ociState("h1") {
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "poststop.state")); err == nil {
		t.Errorf("poststop ran before delete")
	}
	e.mustRun("delete", "h1")
	checkHookState(t, dir, "poststop", "h1", b, "stopped", 0)
	order := readLines(t, filepath.Join(dir, "order"))
	want := "prestart createRuntime createContainer startContainer process poststart poststop"
	if got := strings.Join(order, " "); got != want && got != strings.Replace(want, "process poststart", "poststart process", 1) {
		t.Errorf("hook order %q, want %q", got, want)
	}
	checkNothingLeft(t, e, "h1")
}

// run -b runs every kind too, and a failing poststart or poststop hook is
// a warning: the later hooks and the container go on. startContainer runs
// as the process's user.
func TestBundleHooksRunAndWarnings(t *testing.T) {
	e := newEnv(t)
	b, dir := hookBundle(t, e, "echo process >> /hookout/order; exit 3", func(d string) map[string]any {
		h := allHooks(map[string]string{"startContainer": "id -u > /hookout/startContainer.uid"})(d)
		fail := map[string]any{"path": "/bin/false"}
		h["poststart"] = append([]any{fail}, h["poststart"].([]any)...)
		h["poststop"] = append([]any{fail}, h["poststop"].([]any)...)
		return h
	})
	editConfig(t, b, func(cfg map[string]any) {
		cfg["process"].(map[string]any)["user"] = map[string]any{"uid": 1234, "gid": 1234}
	})
	os.Chmod(dir, 0o777)
	os.WriteFile(filepath.Join(dir, "order"), nil, 0o666)
	os.Chmod(filepath.Join(dir, "order"), 0o666)
	r := e.run("run", "-b", b, "h2")
	if r.code != 3 {
		t.Fatalf("run -b: %v, want exit 3", r)
	}
	warns := lines(r.err)
	if len(warns) != 2 || !strings.Contains(warns[0], "hooks.poststart[0] /bin/false: exit status 1") ||
		!strings.Contains(warns[1], "hooks.poststop[0] /bin/false: exit status 1") {
		t.Errorf("run -b stderr %q: want one warning per failed hook", r.err)
	}
	order := strings.Join(readLines(t, filepath.Join(dir, "order")), " ")
	if !strings.HasPrefix(order, "prestart createRuntime createContainer startContainer ") || !strings.HasSuffix(order, " poststop") ||
		!strings.Contains(order, "process") || !strings.Contains(order, "poststart") {
		t.Errorf("hook order %q", order)
	}
	checkHookState(t, dir, "poststop", "h2", b, "stopped", 0)
	if st := readHookState(t, dir, "poststart"); st.Status != "running" || st.Pid <= 0 || st.Pid != readHookState(t, dir, "createRuntime").Pid {
		t.Errorf("run -b poststart hook got %+v; want status running and the init's pid, as createRuntime got", st)
	}
	if uid, _ := os.ReadFile(filepath.Join(dir, "startContainer.uid")); string(uid) != "1234\n" {
		t.Errorf("startContainer ran as uid %q, want the process's 1234", uid)
	}
	checkNothingLeft(t, e, "h2")
}

// A failing or hanging hook before start fails create with one line naming
// it; the container is stopped and deleted, nothing of it is left, the
// process never ran, and the poststop hooks run (lifecycle step 12, 13).
func TestBundleHookFailures(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, kind string
		hook       map[string]any
		want       string
	}{
		{"fails", "createRuntime", map[string]any{"path": "/bin/false"}, "hooks.createRuntime[0] /bin/false: exit status 1"},
		{"stderr", "createContainer", map[string]any{"path": "/bin/sh", "args": []any{"sh", "-c", "echo first >&2; echo no luck >&2; exit 2"}},
			"hooks.createContainer[0] /bin/sh: exit status 2: no luck"},
		{"missing", "prestart", map[string]any{"path": "/no/such/hook"}, "hooks.prestart[0] /no/such/hook: no such file or directory"},
		// sleep is a child of sh, which the timeout must kill too.
		{"hangs", "createRuntime", map[string]any{"path": "/bin/sh", "args": []any{"sh", "-c", "sleep 37; true"}, "timeout": 1},
			"hooks.createRuntime[0] /bin/sh: timed out after 1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, dir := hookBundle(t, e, "echo process >> /hookout/order", func(d string) map[string]any {
				h := allHooks(nil)(d)
				h[tc.kind] = []any{tc.hook}
				return h
			})
			start := time.Now()
			r := e.create(b, "hf")
			if r.code != 1 || len(lines(r.err)) != 1 || !strings.Contains(r.err, tc.want) {
				t.Errorf("create: %v; want exit 1 and one line with %q", r, tc.want)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("create took %v", d)
			}
			order := readLines(t, filepath.Join(dir, "order"))
			if contains(order, "process") || contains(order, "startContainer") || contains(order, "poststart") ||
				len(order) == 0 || order[len(order)-1] != "poststop" {
				t.Errorf("hooks run: %q; want the ones before %s, then poststop", order, tc.kind)
			}
			checkNothingLeft(t, e, "hf", b, dir)
			if p := procsWith("sleep 37"); len(p) > 0 {
				t.Errorf("hook processes left: %v", p)
			}
		})
	}
}

// A failing startContainer hook fails start: the process never runs, the
// container is deleted, poststop runs.
func TestBundleStartContainerHookFails(t *testing.T) {
	e := newEnv(t)
	b, dir := hookBundle(t, e, "echo process >> /hookout/order", func(d string) map[string]any {
		h := allHooks(nil)(d)
		h["startContainer"] = []any{map[string]any{"path": "/bin/false"}}
		return h
	})
	if r := e.create(b, "hs"); r.code != 0 {
		t.Fatalf("create: %v", r)
	}
	r := e.run("start", "hs")
	if r.code != 1 || len(lines(r.err)) != 1 || !strings.Contains(r.err, "hooks.startContainer[0] /bin/false: exit status 1") {
		t.Errorf("start: %v; want exit 1 naming the hook", r)
	}
	order := strings.Join(readLines(t, filepath.Join(dir, "order")), " ")
	if order != "prestart createRuntime createContainer poststop" {
		t.Errorf("hooks run: %q", order)
	}
	checkNothingLeft(t, e, "hs", b, dir)
}

// create runs create with its stdout and stderr in files: they become the
// container's, and a pipe would stay open as long as the container runs.
func (e *env) create(bundle, id string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.cmd(ctx, "create", "-b", bundle, id)
	dir := e.t.TempDir()
	out, _ := os.Create(filepath.Join(dir, "out"))
	errf, _ := os.Create(filepath.Join(dir, "err"))
	defer out.Close()
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = out, errf
	code := 0
	if err := cmd.Run(); err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	o, _ := os.ReadFile(out.Name())
	errb, _ := os.ReadFile(errf.Name())
	return result{code: code, out: string(o), err: string(errb)}
}

// procsWith lists the pids whose command line contains s.
func procsWith(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(data), "\x00", " "), s) && d.Name() != fmt.Sprint(os.Getpid()) {
			out = append(out, d.Name())
		}
	}
	return out
}
