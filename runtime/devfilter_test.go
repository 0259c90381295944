package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runInFilteredCgroup runs script with sh in a new cgroup v2 dir that has
// the device filter of rules, and returns its output.
func runInFilteredCgroup(t *testing.T, rules []specs.LinuxDeviceCgroup, script string) string {
	t.Helper()
	h := detectHierarchies()
	if os.Geteuid() != 0 || h.v2 == "" {
		t.Skip("needs root and a cgroup v2 hierarchy")
	}
	dir := filepath.Join(h.v2, fmt.Sprintf("crun-lite-devfilter-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 dir: %v", err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := attachDeviceFilter(dir, rules); err != nil {
		t.Fatal(err)
	}
	// The shell waits for a line, by which time it is in the cgroup.
	cmd := exec.Command("/bin/sh", "-c", "read go; "+script)
	in, _ := cmd.StdinPipe()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("join the cgroup: %v", err)
	}
	in.Write([]byte("go\n"))
	in.Close()
	cmd.Wait()
	return out.String()
}

const devScript = `head -c1 /dev/zero >/dev/null && echo zero-read
echo x >/dev/zero && echo zero-written
echo x >/dev/null && echo null-written
head -c1 /dev/urandom >/dev/null && echo urandom-read
true`

// The eBPF device filter of cgroup v2 gives the rules the v1 semantics:
// in order, later rules win, access must be granted whole.
func TestDeviceFilterV2(t *testing.T) {
	one, three, five := int64(1), int64(3), int64(5)
	cases := []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  string
	}{
		{"deny all, allow null", []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: &one, Minor: &three, Access: "rw"}}, "null-written"},
		{"allow all, deny writes to zero", []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"},
			{Allow: false, Type: "c", Major: &one, Minor: &five, Access: "w"}}, "zero-read null-written urandom-read"},
		{"read-only char devices of major 1", []specs.LinuxDeviceCgroup{{Allow: false},
			{Allow: true, Type: "c", Major: &one, Access: "r"}, {Allow: true, Type: "c", Major: &one, Minor: &three}},
			"zero-read null-written urandom-read"},
		{"block devices only", []specs.LinuxDeviceCgroup{{Allow: false}, {Allow: true, Type: "b"}}, ""},
		{"runc's defaults", append([]specs.LinuxDeviceCgroup{{Allow: false}}, allowedDevices...),
			"zero-read zero-written null-written urandom-read"},
	}
	for _, tc := range cases {
		out := runInFilteredCgroup(t, tc.rules, devScript)
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasSuffix(l, "-read") || strings.HasSuffix(l, "-written") {
				got = append(got, l)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: got %q, want %q (output %q)", tc.name, strings.Join(got, " "), tc.want, out)
		}
		if tc.want != "zero-read zero-written null-written urandom-read" && !strings.Contains(out, "Operation not permitted") {
			t.Errorf("%s: no EPERM in %q", tc.name, out)
		}
	}
}

// On a host without a v1 devices hierarchy the container's cgroup v2 dir
// gets the filter: a bundle's deny-all stops the disk, not /dev/null.
func TestSetupCgroupsDeviceFilterWithoutV1(t *testing.T) {
	real := detectHierarchies()
	if os.Geteuid() != 0 || real.v2 == "" {
		t.Skip("needs root and a cgroup v2 hierarchy")
	}
	h := &hierarchies{v2: real.v2, v2Ctrl: real.v2Ctrl, v1: map[string]string{}} // no v1 at all
	c := &Container{ID: fmt.Sprintf("devfilter-test-%d", os.Getpid()), Kind: KindBundle}
	spec := DefaultSpec(false, 0, 0)
	cg, err := setupCgroupsIn(h, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.destroy()
	if len(cg.dirs) != 1 || cg.dirs[0].path != filepath.Join(real.v2, "crun-lite", c.ID) {
		t.Fatalf("cgroup dirs %+v", cg.dirs)
	}
	blk := filepath.Join(t.TempDir(), "blk")
	cmd := exec.Command("/bin/sh", "-c", "read go; "+devScript+"; mknod "+blk+" b 7 0 && head -c1 "+blk+" >/dev/null && echo disk-read")
	in, _ := cmd.StdinPipe()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cg.add(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	in.Close()
	cmd.Wait()
	// zero, null and urandom are among the defaults; a disk is not (mknod
	// of any node is).
	if !strings.Contains(out.String(), "zero-read\nzero-written\nnull-written\nurandom-read\n") ||
		!strings.Contains(out.String(), blk+"' for reading: Operation not permitted") {
		t.Errorf("devices in the filtered cgroup: %q", out.String())
	}
	// Outside the cgroup the same node opens (or fails otherwise): the
	// EPERM above is the filter's.
	if out, _ := exec.Command("head", "-c1", blk).CombinedOutput(); strings.Contains(string(out), "Operation not permitted") {
		t.Errorf("the block node cannot be opened outside the filtered cgroup either: %q", out)
	}
}
