package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

// TestGCPercent runs setGCPercent in a fresh process (this test binary)
// and checks the GC percent it leaves: gcPercent by default, GOGC when set.
func TestGCPercent(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") {
			env = append(env, kv)
		}
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, fmt.Sprint(gcPercent)},
		{[]string{"GOGC=100"}, "100"},
		{[]string{"GOGC=off"}, "-1"},
	} {
		cmd := exec.Command(self, "-test.run=^TestGCPercentChild$")
		cmd.Env = append(append(env[:len(env):len(env)], c.env...), "UNIONFSD_GC_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", c.env, err, out)
		}
		got, _, _ := strings.Cut(string(out), "\n")
		if got != "gc="+c.want {
			t.Errorf("env %v: child printed %q, want gc=%s", c.env, got, c.want)
		}
	}
}

// TestGCPercentChild is TestGCPercent's child.
func TestGCPercentChild(t *testing.T) {
	if os.Getenv("UNIONFSD_GC_CHILD") != "1" {
		t.Skip("run by TestGCPercent")
	}
	setGCPercent()
	fmt.Printf("gc=%d\n", debug.SetGCPercent(100))
}
