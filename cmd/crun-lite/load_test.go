package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestRunParallelLoad starts 32 containers of one image at once, each
// writing and deleting files for a while, and checks that they all finish
// and leave nothing behind: no mounts, stage processes, cgroups, container
// dirs after rm or descriptors of ours, and an unchanged image. UNIONFSD_LONG=1
// runs them for three minutes instead of a few seconds.
func TestRunParallelLoad(t *testing.T) {
	e := newEnv(t)
	const n = 32
	secs := 5
	if os.Getenv("UNIONFSD_LONG") != "" {
		secs = 180
	}
	layer := e.layerDir()
	before := treeDigest(t, layer)
	fdsBefore := openFds()
	script := fmt.Sprintf(`end=$(($(date +%%s)+%d)); i=0
while [ $(date +%%s) -lt $end ]; do
  echo $i > /tmp/f$((i%%8)); mkdir -p /tmp/d$((i%%4)); echo x > /tmp/d$((i%%4))/g; rm -rf /tmp/d$(((i+2)%%4)) /tmp/f$(((i+4)%%8)); echo $i >> /etc/log
  i=$((i+1))
done
[ -s /etc/log ] && echo done`, secs)
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = e.run("run", "--name", fmt.Sprintf("load%d", i), "busybox", "sh", "-c", script)
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.out != "done\n" {
			t.Errorf("container %d: %v", i, r)
		}
	}
	// Stopped containers keep their dirs, not their cgroups; rm removes
	// the dirs.
	var ids []string
	for _, l := range lines(e.mustRun("ps", "--no-trunc"))[1:] {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "load") {
			ids = append(ids, f[0])
		}
	}
	if len(ids) != n {
		t.Errorf("ps lists %d of the %d containers", len(ids), n)
	}
	if left := cgroupsOf(ids); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, id := range ids {
		e.mustRun("rm", id)
	}
	if c := e.containerCount(); c != 0 {
		t.Errorf("%d container dirs left after rm", c)
	}
	if m := mountsUnder(e.store); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if p := stageProcs(e.store); len(p) > 0 {
		t.Errorf("stage processes left: %v", p)
	}
	if fds := openFds(); fds > fdsBefore {
		t.Errorf("the test process holds %d descriptors, %d before the containers", fds, fdsBefore)
	}
	if treeDigest(t, layer) != before {
		t.Errorf("the image layer changed")
	}
	// The store still works.
	if out := e.mustRun("run", "--rm", "busybox", "cat", "/etc/hostname"); len(lines(out)) != 1 {
		t.Errorf("run after the load: %q", out)
	}
}

// openFds counts our own open descriptors.
func openFds() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// cgroupsOf lists the cgroup dirs of the containers ids in every hierarchy.
func cgroupsOf(ids []string) []string {
	var out []string
	for _, id := range ids {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/crun-lite/" + id)
		more, _ := filepath.Glob("/sys/fs/cgroup/crun-lite/" + id)
		out = append(out, append(dirs, more...)...)
	}
	return out
}
