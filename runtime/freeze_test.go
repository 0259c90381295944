package runtime

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPidsInNestedNamespace: the processes a pause freezes include those
// in a pid namespace nested in the container's, and nothing outside it.
func TestPidsInNestedNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for pid namespaces")
	}
	// outer ns: sh (pid 1) -> unshare -> nested ns: sleep
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
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
