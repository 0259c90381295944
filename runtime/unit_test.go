package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/mountinfo"
)

// The container tests proper (real containers) are in cmd/crun-lite; these
// check the pure pieces on real files.

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveUser(t *testing.T) {
	dir := t.TempDir()
	passwd := writeFile(t, dir, "passwd", "root:x:0:0:root:/root:/bin/sh\n# comment\nbob:x:1000:1000::/home/bob:/bin/sh\nbad line\n")
	group := writeFile(t, dir, "group", "root:x:0:\nbob:x:1000:\nwheel:x:10:bob,alice\nstaff:x:50:alice\n")
	cases := []struct {
		spec string
		want *ids
		err  string
	}{
		{"root", &ids{uid: 0, gid: 0, home: "/root"}, ""},
		{"0", &ids{uid: 0, gid: 0, home: "/root"}, ""},
		{"bob", &ids{uid: 1000, gid: 1000, additional: []uint32{10}, home: "/home/bob"}, ""},
		{"bob:staff", &ids{uid: 1000, gid: 50, additional: []uint32{10}, home: "/home/bob"}, ""},
		{"1000:7", &ids{uid: 1000, gid: 7, additional: []uint32{10}, home: "/home/bob"}, ""},
		{"4242", &ids{uid: 4242, gid: 0, home: "/"}, ""},
		{"4242:4243", &ids{uid: 4242, gid: 4243, home: "/"}, ""},
		{"nobody", nil, "unable to find user nobody: no matching entries in passwd file"},
		{"bob:nogroup", nil, "unable to find group nogroup: no matching entries in group file"},
		{"-1", nil, "must not be negative"},
		{"4294967295", nil, "out of range"},
		{"bob:", nil, "want USER[:GROUP]"},
	}
	for _, tc := range cases {
		got, err := resolveUser(tc.spec, passwd, group)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v %v, want %+v", tc.spec, got, err, tc.want)
		}
	}
	// No passwd file at all: numbers still work, names do not.
	if got, err := resolveUser("5:6", filepath.Join(dir, "none"), filepath.Join(dir, "none")); err != nil || got.uid != 5 || got.gid != 6 {
		t.Errorf("numeric user without passwd: %+v %v", got, err)
	}
	if _, err := resolveUser("bob", filepath.Join(dir, "none"), group); err == nil {
		t.Errorf("named user without passwd resolved")
	}
}

func TestSubIDMaps(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "subuid", "alice:100000:65536\n1001:300000:1000\nbob:200000:65536\nalice:500000:10\n")
	got, err := readSubIDs(p, "alice", 1001)
	if err != nil {
		t.Fatal(err)
	}
	want := []subIDRange{{100000, 65536}, {300000, 1000}, {500000, 10}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	m := mapWithRanges(1001, got)
	wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1001, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536},
		{ContainerID: 65537, HostID: 300000, Size: 1000}, {ContainerID: 66537, HostID: 500000, Size: 10}}
	if !reflect.DeepEqual(m, wantMap) {
		t.Errorf("map %v, want %v", m, wantMap)
	}
	if !idMapped(m, 65536) || !idMapped(m, 0) || idMapped(m, 66547) {
		t.Errorf("idMapped wrong for %v", m)
	}
	if r, err := readSubIDs(filepath.Join(dir, "missing"), "alice", 1); err != nil || r != nil {
		t.Errorf("missing file: %v %v", r, err)
	}
}

func TestParseMountOptions(t *testing.T) {
	o := parseMountOptions([]string{"rbind", "ro", "nosuid", "rprivate", "mode=755", "size=65536k", "rw", "exec"})
	if !o.bind || !o.rec {
		t.Errorf("rbind not seen: %+v", o)
	}
	if o.flags != unix.MS_NOSUID || o.clear&unix.MS_RDONLY == 0 {
		t.Errorf("flags %#x clear %#x: rw after ro must win", o.flags, o.clear)
	}
	if o.data != "mode=755,size=65536k" || len(o.propagation) != 1 || o.propagation[0] != unix.MS_PRIVATE|unix.MS_REC {
		t.Errorf("data %q propagation %v", o.data, o.propagation)
	}
}

func TestBuildEnvAndCommand(t *testing.T) {
	t.Setenv("FROM_HOST", "h")
	env := buildEnv([]string{"PATH=/img", "A=1", "B=2"}, []string{"A=flag", "FROM_HOST", "UNSET_HOST_VAR", "C=3"}, "box", true)
	want := []string{"PATH=/img", "A=flag", "B=2", "FROM_HOST=h", "C=3", "HOSTNAME=box", "TERM=xterm"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	cfg := v1.ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"c1", "c2"}}
	if got := commandOf(cfg, nil); !reflect.DeepEqual(got, []string{"/ep", "c1", "c2"}) {
		t.Errorf("entrypoint+cmd: %q", got)
	}
	if got := commandOf(cfg, []string{"x"}); !reflect.DeepEqual(got, []string{"/ep", "x"}) {
		t.Errorf("entrypoint+args: %q", got)
	}
	if got := commandOf(v1.ImageConfig{}, nil); len(got) != 0 {
		t.Errorf("nothing: %q", got)
	}
}

func TestParseVolumes(t *testing.T) {
	dir := t.TempDir()
	vols, err := parseVolumes([]string{dir + ":/data", dir + "/:/ro/:ro"})
	if err != nil || len(vols) != 2 || vols[1].host != dir || vols[1].ctr != "/ro" || !vols[1].ro || vols[0].ro {
		t.Fatalf("parse: %+v %v", vols, err)
	}
	for _, bad := range []string{dir, dir + ":rel", "rel:/x", dir + ":/", dir + ":/x:rx", filepath.Join(dir, "missing") + ":/x", dir + ":/a:ro:z"} {
		if _, err := parseVolumes([]string{bad}); err == nil || ExitCodeOf(err) != ExitRunner {
			t.Errorf("-v %s accepted (%v)", bad, err)
		}
	}
	ms := volumeMounts([]volume{{host: "/h1", ctr: "/a/b/c"}, {host: "/h2", ctr: "/a"}, {host: "/h3", ctr: "/a/b", ro: true}})
	var order []string
	for _, m := range ms {
		order = append(order, m.Destination)
	}
	if strings.Join(order, " ") != "/a /a/b /a/b/c" || ms[1].Options[len(ms[1].Options)-1] != "ro" {
		t.Errorf("mounts not parents-first: %v", ms)
	}
}

func TestCgroupMountinfo(t *testing.T) {
	own := map[string]string{"memory": "/sandbox/x", "pids": "/", "cpu": "/"}
	h := &hierarchies{v2Ctrl: map[string]bool{}, v1: map[string]string{}}
	for _, line := range []string{
		"30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
		"31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct",
		"32 25 0:28 /sandbox /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
		"33 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
		"34 25 0:30 / /proc rw - proc proc rw",
	} {
		m, _ := mountinfo.ParseLine(line)
		h.addMount(m, own)
	}
	want := map[string]string{"memory": "/sys/fs/cgroup/memory/sandbox/x", "cpu": "/sys/fs/cgroup/cpu,cpuacct"}
	if !reflect.DeepEqual(h.v1, want) || h.v2 != "/sys/fs/cgroup/unified" {
		t.Errorf("v1 %v v2 %q; want %v (pids: our cgroup is outside that mount's root)", h.v1, h.v2, want)
	}
	mem, pids, cpu := int64(64<<20), int64(10), int64(50000)
	v2, v1, names := cgroupWants(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &mem},
		Pids: &specs.LinuxPids{Limit: &pids}, CPU: &specs.LinuxCPU{Quota: &cpu}})
	if len(names) != 3 || v2["cpu"][0].value != "50000 100000" || v1["memory"][0].value != "67108864" || !v1["pids"][0].late {
		t.Errorf("wants: %v %v %v", v2, v1, names)
	}
}

func TestDefaultSpecLikeRunc(t *testing.T) {
	s := DefaultSpec(false, 0, 0)
	if s.Process.Args[0] != "sh" || !s.Process.Terminal || !s.Root.Readonly || s.Root.Path != "rootfs" || len(s.Mounts) != 7 {
		t.Errorf("spec: %+v", s)
	}
	if hasNamespace(s, specs.UserNamespace) || !hasNamespace(s, specs.NetworkNamespace) {
		t.Errorf("rootful spec namespaces: %v", s.Linux.Namespaces)
	}
	r := DefaultSpec(true, 1000, 1001)
	if !hasNamespace(r, specs.UserNamespace) || hasNamespace(r, specs.NetworkNamespace) ||
		r.Linux.UIDMappings[0].HostID != 1000 || r.Linux.GIDMappings[0].HostID != 1001 || r.Mounts[5].Type != "none" {
		t.Errorf("rootless spec: %+v", r.Linux)
	}
	flags, err := namespaceFlags(s)
	if err != nil || flags != unix.CLONE_NEWNS|unix.CLONE_NEWPID|unix.CLONE_NEWNET|unix.CLONE_NEWIPC|unix.CLONE_NEWUTS {
		t.Errorf("clone flags %#x %v", flags, err)
	}
	// A namespace joined by path is not created.
	s.Linux.Namespaces[1] = specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}
	if flags, err := namespaceFlags(s); err != nil || flags&unix.CLONE_NEWNET != 0 {
		t.Errorf("clone flags with a joined network namespace %#x %v", flags, err)
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.MountNamespace, Path: "/proc/1/ns/mnt"})
	if _, err := namespaceFlags(s); err == nil {
		t.Errorf("joining a mount namespace by path should be refused")
	}
}

func TestContainerRecords(t *testing.T) {
	root := t.TempDir()
	a := &Container{Kind: KindImage, Name: "web", ImageID: "sha256:aa"}
	if err := create(root, a); err != nil {
		t.Fatal(err)
	}
	if err := create(root, &Container{Kind: KindImage, Name: "web"}); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("duplicate name: %v", err)
	}
	if err := create(root, &Container{Kind: KindImage, Name: "../x"}); err == nil {
		t.Errorf("bad name accepted")
	}
	b := &Container{Kind: KindImage}
	if err := create(root, b); err != nil || b.Name != b.ID[:12] {
		t.Fatalf("default name: %q %v", b.Name, err)
	}
	for _, ref := range []string{"web", a.ID, a.ID[:8]} {
		if c, err := Find(root, ref); err != nil || c.ID != a.ID {
			t.Errorf("find %s: %v", ref, err)
		}
	}
	if _, err := Find(root, "nope"); err == nil || !strings.Contains(err.Error(), "no such container") {
		t.Errorf("find nope: %v", err)
	}
	if used, err := ImagesInUse(root); err != nil || len(used["sha256:aa"]) != 1 || used["sha256:aa"][0] != "web" {
		t.Errorf("images in use: %v %v", used, err)
	}
	// A state whose processes are gone reads as stopped.
	a.writeState(&State{Status: specs.StateRunning, Pid: 1 << 22})
	if st, _ := a.Status(); st.Status != specs.StateStopped {
		t.Errorf("dead pid: status %s", st.Status)
	}
	a.writeState(&State{Status: specs.StateRunning, Pid: os.Getpid()})
	if st, _ := a.Status(); st.Status != specs.StateRunning {
		t.Errorf("live pid: status %s", st.Status)
	}
	if err := Remove(root, "web", false); err == nil {
		t.Errorf("rm of a running container without force succeeded")
	}
	a.writeState(&State{Status: specs.StateStopped})
	if err := Remove(root, "web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.dir); !os.IsNotExist(err) {
		t.Errorf("container dir still there: %v", err)
	}
}
