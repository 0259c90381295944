package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestPidsInNestedNamespace: the processes a pause freezes include those
// in a pid namespace nested in the container's, and nothing outside it.
func TestPidsInNestedNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for pid namespaces")
	}
	// outer ns: sh (pid 1) -> unshare -> nested ns: sleep
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c",
		"unshare --pid --fork sleep 60 & exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// The outer namespace's init is the child of unshare; find it and the
	// nested sleep by their ancestry.
	var outer, nested int
	deadline := time.Now().Add(10 * time.Second)
	for (outer == 0 || nested == 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		outer, nested = 0, 0
		for _, c := range childrenOf(cmd.Process.Pid) {
			outer = c
		}
		if outer != 0 {
			for _, c := range childrenOf(outer) {
				for _, g := range childrenOf(c) {
					nested = g
				}
			}
		}
	}
	if outer == 0 || nested == 0 {
		t.Fatalf("no nested namespace process found (outer %d, nested %d)", outer, nested)
	}
	ns, err := pidNamespace(outer)
	if err != nil {
		t.Fatal(err)
	}
	if own, _ := pidNamespace(os.Getpid()); own == ns {
		t.Fatal("the outer process is in our namespace")
	}
	if inner, _ := pidNamespace(nested); inner == ns {
		t.Fatal("setup: the nested process shares the outer namespace")
	}
	got := map[int]bool{}
	for _, p := range pidsInNamespace(ns) {
		got[p] = true
	}
	if !got[outer] || !got[nested] {
		t.Errorf("pidsInNamespace = %v: want the outer init %d and the nested %d", got, outer, nested)
	}
	if got[os.Getpid()] || got[cmd.Process.Pid] {
		t.Errorf("pidsInNamespace = %v includes processes outside the namespace", got)
	}
}

// childrenOf reads /proc/PID/task/*/children.
func childrenOf(pid int) []int {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// TestFreezerV1AndV2 freezes a process tree in its own pid namespace with
// each freezer the host has (v1 controller, v2 cgroup.freeze): it stops
// writing while frozen, writes again after thaw, is back in its cgroup,
// and the freezer cgroup is gone.
func TestFreezerV1AndV2(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	counter := filepath.Join(t.TempDir(), "n")
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
		"i=0; while :; do i=$((i+1)); echo $i > "+counter+"; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var init int
	t.Cleanup(func() {
		// The writer must be dead, not only unshare, before the temp dir
		// is removed: it recreates the counter file all the time.
		if init != 0 {
			syscall.Kill(init, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
		for end := time.Now().Add(10 * time.Second); init != 0 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if stat, err := os.ReadFile("/proc/" + strconv.Itoa(init) + "/stat"); err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
		}
	})
	for end := time.Now().Add(10 * time.Second); init == 0 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if c := childrenOf(cmd.Process.Pid); len(c) > 0 {
			init = c[0]
		}
	}
	if init == 0 {
		t.Fatal("no namespace init")
	}
	advancesWithin := func(d time.Duration) bool { return testsupport.ChangesWithin(counter, d) }
	v1, v2 := freezerMounts()
	for _, h := range []struct {
		name  string
		mount string
		v2    bool
	}{{"v1", v1, false}, {"v2", v2, true}} {
		t.Run(h.name, func(t *testing.T) {
			if h.mount == "" {
				t.Skipf("no cgroup %s freezer here", h.name)
			}
			before, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/cgroup")
			if !advancesWithin(10 * time.Second) {
				t.Fatal("the counter does not advance")
			}
			dir := filepath.Join(h.mount, "crun-lite", "freeze-test-"+strconv.Itoa(os.Getpid()))
			fz, err := newFreezerAt(dir, h.v2)
			if err != nil {
				t.Fatal(err)
			}
			err = fz.freeze(init)
			frozen := err == nil && !advancesWithin(time.Second)
			if terr := fz.thaw(); terr != nil {
				t.Error(terr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !frozen {
				t.Error("the process kept writing while frozen")
			}
			if !advancesWithin(10 * time.Second) {
				t.Error("the process does not run after thaw")
			}
			if after, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/cgroup"); string(after) != string(before) {
				t.Errorf("cgroups after thaw:\n%s\nbefore:\n%s", after, before)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("freezer cgroup %s left: %v", dir, err)
			}
		})
	}
}
