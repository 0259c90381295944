package runtime

import (
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/internal/mountinfo"
)

func TestCgroupsPathPlacement(t *testing.T) {
	own := map[string]string{"memory": "/sandbox/x", "pids": "/", "cpuset": "/"}
	h := &hierarchies{v2Ctrl: map[string]bool{}, v1: map[string]string{}}
	for _, line := range []string{
		"30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
		"31 25 0:27 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset",
		"32 25 0:28 /sandbox /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
	} {
		m, _ := mountinfo.ParseLine(line)
		h.addMount(m, own)
	}
	cases := []struct {
		cgPath, ctrl, want string
		ok                 bool
	}{
		{"", "memory", "/sys/fs/cgroup/memory/sandbox/x/crun-lite/c1", true},
		{"/libpod_parent/libpod-c1", "memory", "/sys/fs/cgroup/memory/libpod_parent/libpod-c1", true},
		{"/libpod_parent/libpod-c1", "cpuset", "/sys/fs/cgroup/cpuset/libpod_parent/libpod-c1", true},
		{"rel/c1", "memory", "/sys/fs/cgroup/memory/sandbox/x/rel/c1", true},
		// Our pids cgroup is outside that mount's root: no place there.
		{"/libpod_parent/libpod-c1", "pids", "", false},
	}
	for _, c := range cases {
		h.cgPath = c.cgPath
		dir, _, ok := h.place("c1", c.ctrl, nil, nil)
		if dir != c.want || ok != c.ok {
			t.Errorf("cgroupsPath %q, %s: %q %v, want %q %v", c.cgPath, c.ctrl, dir, ok, c.want, c.ok)
		}
	}
	for p, want := range map[string]string{"/a/b": "", "a": "", "machine.slice:libpod:c1": "systemd", "/a/../..": "..", "a/..": "..", "/": "root itself", "//": "root itself", "./": "root itself"} {
		got := checkCgroupsPath(p)
		if (want == "") != (got == "") || (want != "" && !strings.Contains(got, want)) {
			t.Errorf("checkCgroupsPath(%q) = %q, want %q", p, got, want)
		}
	}
}
