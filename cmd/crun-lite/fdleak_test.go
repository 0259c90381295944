package main

import (
	"bytes"
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestNoDescriptorReachesContainer: the container's process gets stdin,
// stdout and stderr and nothing else: not the /dev/fuse connection of its
// own union (which it could answer requests on), not a directory of the
// host that crun-lite's caller left open (a way out of the root: runc's
// CVE-2024-21626), not the stages' pipes.
func TestNoDescriptorReachesContainer(t *testing.T) {
	e := newEnv(t)
	hostDir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hostDir.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// ls lists its own open descriptors; its own dir fd (3) is the only
	// one beyond stdio it may see.
	cmd := e.cmd(ctx, "run", "--rm", "busybox", "ls", "-l", "/proc/self/fd/")
	cmd.ExtraFiles = []*os.File{hostDir} // fd 3 of crun-lite, not close-on-exec
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v: %s", err, errb.String())
	}
	var fds []string
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 9 {
			fds = append(fds, strings.Join(f[8:], " "))
		}
	}
	sort.Strings(fds)
	for _, fd := range fds {
		if !strings.HasPrefix(fd, "0 ") && !strings.HasPrefix(fd, "1 ") && !strings.HasPrefix(fd, "2 ") && fd != "3" {
			t.Errorf("descriptor open in the container: %s (all: %q)", fd, fds)
		}
	}
	if strings.Contains(out.String(), "fuse") {
		t.Errorf("/dev/fuse is open in the container:\n%s", out.String())
	}
}
