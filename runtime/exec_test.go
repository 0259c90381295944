package runtime

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMergeEnv(t *testing.T) {
	t.Setenv("CRUN_LITE_TEST_PASS", "from-caller")
	got, err := mergeEnv([]string{"PATH=/bin", "A=1"}, []string{"A=2", "B=3", "CRUN_LITE_TEST_PASS", "CRUN_LITE_TEST_UNSET"})
	want := []string{"PATH=/bin", "A=2", "B=3", "CRUN_LITE_TEST_PASS=from-caller"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("mergeEnv: %q, %v; want %q", got, err, want)
	}
	if _, err := mergeEnv(nil, []string{"=x"}); err == nil {
		t.Errorf("mergeEnv accepted an empty key")
	}
}

func TestAddCaps(t *testing.T) {
	p := &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: []string{"CAP_CHOWN"}, Effective: []string{"CAP_CHOWN"}, Permitted: []string{"CAP_CHOWN"},
		Inheritable: []string{"CAP_NET_RAW"},
	}}
	orig := append([]string(nil), p.Capabilities.Bounding...)
	base := p.Capabilities
	if err := addCaps(p, []string{"net_raw", "CAP_CHOWN", "SYS_ADMIN"}); err != nil {
		t.Fatal(err)
	}
	c := p.Capabilities
	want := []string{"CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"}
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !reflect.DeepEqual(set, want) {
			t.Errorf("%s: %q, want %q", name, set, want)
		}
	}
	if !reflect.DeepEqual(c.Ambient, []string{"CAP_NET_RAW"}) {
		t.Errorf("ambient %q: want only the inheritable CAP_NET_RAW", c.Ambient)
	}
	if !reflect.DeepEqual(base.Bounding, orig) {
		t.Errorf("the container's config was changed: %q", base.Bounding)
	}
	if err := addCaps(p, []string{"CAP_NOPE"}); err == nil || !strings.Contains(err.Error(), "CAP_NOPE") {
		t.Errorf("unknown capability: %v", err)
	}
}

func TestExecConfigOf(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"init"}, Env: []string{"A=1"}, Cwd: "/srv",
		Terminal: true, NoNewPrivileges: true, User: specs.User{UID: 7, GID: 8}},
		Linux: &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}}}
	c := &Container{User: "app"}
	cfg, err := execConfigOf(c, spec, ExecOptions{Args: []string{"sh"}, Env: []string{"B=2"}})
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Process
	if !reflect.DeepEqual(p.Args, []string{"sh"}) || !reflect.DeepEqual(p.Env, []string{"A=1", "B=2"}) || p.Cwd != "/srv" ||
		p.Terminal || !p.NoNewPrivileges || cfg.User != "app" || cfg.Seccomp == nil {
		t.Errorf("exec config %+v, user %q", p, cfg.User)
	}
	if spec.Process.Args[0] != "init" || len(spec.Process.Env) != 1 {
		t.Errorf("the container's process changed: %+v", spec.Process)
	}
	// --process replaces the settings, and the container's -u with them.
	cfg, err = execConfigOf(c, spec, ExecOptions{Process: &specs.Process{Args: []string{"id"}, User: specs.User{UID: 5}}, AdditionalGids: []uint32{9}})
	if err != nil || cfg.User != "" || cfg.Process.User.UID != 5 || cfg.Process.Cwd != "/" || cfg.Process.NoNewPrivileges ||
		!reflect.DeepEqual(cfg.Process.User.AdditionalGids, []uint32{9}) {
		t.Errorf("--process: %+v, %v", cfg, err)
	}
	for _, o := range []ExecOptions{
		{},                               // no command
		{Args: []string{"sh"}, Cwd: "x"}, // relative working dir
		{Args: []string{"sh"}, User: "-1"},
		{Process: &specs.Process{Args: []string{"sh"}, ApparmorProfile: "p"}},
	} {
		if _, err := execConfigOf(c, spec, o); err == nil {
			t.Errorf("execConfigOf accepted %+v", o)
		}
	}
}

// TestCgroupHierarchyKeys: a /proc/PID/cgroup line and the mountinfo
// line of its hierarchy name it alike, whatever the option order.
func TestCgroupHierarchyKeys(t *testing.T) {
	mi := strings.Join([]string{
		"30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpuacct,cpu",
		"31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
		"32 25 0:28 /sub /mnt/pids rw - cgroup cgroup rw,pids,clone_children",
		"33 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate",
		"34 25 0:30 / /tmp rw - tmpfs tmpfs rw",
	}, "\n")
	mounts, err := cgroupMountsIn(strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "cgroup")
	os.WriteFile(p, []byte("4:cpu,cpuacct:/a\n3:name=systemd:/b\n2:pids:/sub/c\n0::/d\n"), 0o644)
	cg, err := readProcCgroups(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu,cpuacct":  "/sys/fs/cgroup/cpu,cpuacct/a",
		"name=systemd": "/sys/fs/cgroup/systemd/b",
		"pids":         "/mnt/pids/c",
		"":             "/sys/fs/cgroup/unified/d",
	}
	for key, path := range cg {
		m, ok := mounts[key]
		if !ok {
			t.Errorf("no mount for hierarchy %q", key)
			continue
		}
		rel, _ := filepath.Rel(m.root, path)
		if got := filepath.Join(m.dir, rel); got != want[key] {
			t.Errorf("hierarchy %q: %s, want %s", key, got, want[key])
		}
	}
	if len(cg) != len(want) {
		t.Errorf("read %d hierarchies, want %d", len(cg), len(want))
	}
}

func TestReadForkReport(t *testing.T) {
	msg := func(kind, val uint64) []byte {
		b := make([]byte, 16)
		binary.NativeEndian.PutUint64(b, kind)
		binary.NativeEndian.PutUint64(b[8:], val)
		return b
	}
	if pid, err := readForkReport(bytes.NewReader(msg(forkPid, 4242))); pid != 4242 || err != nil {
		t.Errorf("pid report: %d, %v", pid, err)
	}
	_, err := readForkReport(bytes.NewReader(msg(forkErrSetns, 1)))
	if err == nil || !strings.Contains(err.Error(), "join the container's namespaces: operation not permitted") {
		t.Errorf("setns failure: %v", err)
	}
	if _, err := readForkReport(bytes.NewReader(nil)); err == nil {
		t.Errorf("no report: no error")
	}
}
