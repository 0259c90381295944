package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// linux.resources.cpu shares, cpus and mems land in the container's v1 cpu
// and cpuset cgroups, below new parents whose cpuset files start empty.
func TestBundleCPUSharesAndCpuset(t *testing.T) {
	e := newEnv(t)
	for _, f := range []string{"/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/cpuset/cpuset.cpus"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no cgroup v1 cpu and cpuset hierarchies: %v", err)
		}
	}
	b := makeBundle(t, e)
	e.mustRun("spec", "-b", b)
	parent := fmt.Sprintf("crun-lite-cpu-%d", os.Getpid())
	t.Cleanup(func() {
		for _, ctrl := range []string{"cpu", "cpuset"} {
			unix.Rmdir(filepath.Join("/sys/fs/cgroup", ctrl, parent, "a"))
			unix.Rmdir(filepath.Join("/sys/fs/cgroup", ctrl, parent))
		}
		e.run("delete", "-f", "cpu1")
	})
	setProcess(t, b, "true")
	editConfig(t, b, func(cfg map[string]any) {
		l := cfg["linux"].(map[string]any)
		l["cgroupsPath"] = "/" + parent + "/a/c1"
		l["resources"] = map[string]any{"cpu": map[string]any{"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}}
	})
	// create's stdio becomes the container's: a file, so nobody waits on a pipe.
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	defer out.Close()
	create := e.cmd(t.Context(), "create", "-b", b, "cpu1")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		data, _ := os.ReadFile(out.Name())
		t.Fatalf("create: %v: %s", err, data)
	}
	st, _ := e.ociState("cpu1")
	want := map[string]string{
		"cpu/" + parent + "/a/c1/cpu.shares":       "512",
		"cpu/" + parent + "/a/c1/cpu.cfs_quota_us": "50000",
		"cpuset/" + parent + "/a/c1/cpuset.cpus":   "0",
		"cpuset/" + parent + "/a/c1/cpuset.mems":   "0",
		fmt.Sprintf("/proc/%d/status", st.Pid):     "Cpus_allowed_list:\t0\n",
	}
	for f, v := range want {
		if !strings.HasPrefix(f, "/") {
			f = "/sys/fs/cgroup/" + f
		}
		data, err := os.ReadFile(f)
		if strings.HasPrefix(f, "/proc") {
			if !strings.Contains(string(data), v) {
				t.Errorf("%s has no %q: %v", f, v, err)
			}
		} else if strings.TrimSpace(string(data)) != v {
			t.Errorf("%s = %q (%v), want %s", f, data, err, v)
		}
	}
	e.mustRun("delete", "-f", "cpu1")
	if _, err := os.Stat("/sys/fs/cgroup/cpuset/" + parent + "/a/c1"); err == nil {
		t.Errorf("cpuset cgroup left after delete")
	}
}
