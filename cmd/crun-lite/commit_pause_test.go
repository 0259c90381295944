package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	rt "github.com/unionfsd/unionfsd/runtime"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestCommitPausesContainer checks the freezer: while paused, a container
// that rewrites a counter file as fast as it can changes nothing in its
// upper dir; after thaw it runs on, and no freezer cgroup is left. Commit
// pauses by default and works with --pause=false too.
func TestCommitPausesContainer(t *testing.T) {
	e := newEnv(t)
	_, sc := e.background("run", "--name", "busy", "busybox", "sh", "-c",
		"echo up; i=0; while :; do i=$((i+1)); echo $i > /n; done")
	waitLine(t, sc, "up")
	counter := filepath.Join(e.containerDir("busy"), "upper", "n")
	// advancesWithin tells whether the counter changes within d.
	advancesWithin := func(d time.Duration) bool { return testsupport.ChangesWithin(counter, d) }
	advances := func() bool { return advancesWithin(10 * time.Second) }
	if !advances() {
		t.Fatalf("the counter does not advance in %s: wrong upper path?", counter)
	}
	thaw, err := rt.Pause(e.store, "busy")
	if err != nil {
		t.Fatal(err)
	}
	frozen := !advancesWithin(time.Second)
	if err := thaw(); err != nil {
		t.Fatal(err)
	}
	if !frozen {
		t.Errorf("the container kept writing while paused")
	}
	if !advances() {
		t.Errorf("the container does not run after thaw")
	}
	// The freezer cgroup made for the pause is gone (other controllers'
	// crun-lite/<id>, devices say, stay with the container).
	id := filepath.Base(e.containerDir("busy"))
	if left, _ := filepath.Glob("/sys/fs/cgroup/freezer/crun-lite/" + id); len(left) > 0 {
		t.Errorf("freezer cgroup left: %v", left)
	}
	e.mustRun("commit", "busy", "busy:1")
	e.mustRun("commit", "--pause=false", "busy", "busy:2")
	if !advances() {
		t.Errorf("the container does not run after commit")
	}
	for _, img := range []string{"busy:1", "busy:2"} {
		// (It may be empty: the shell truncates before it writes.)
		if got := e.mustRun("run", "--rm", img, "ls", "/n"); strings.TrimSpace(got) != "/n" {
			t.Errorf("%s has no /n", img)
		}
	}
	// A commit killed while the container is paused leaves it frozen; rm -f
	// must still remove it (a v1-frozen process ignores even SIGKILL).
	if _, err := rt.Pause(e.store, "busy"); err != nil {
		t.Fatal(err)
	}
	if advancesWithin(time.Second) {
		t.Errorf("the container kept writing while paused")
	}
	start := time.Now()
	e.mustRun("rm", "-f", "busy")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rm -f of a frozen container took %v", d)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/crun-lite/" + id); len(left) > 0 {
		t.Errorf("cgroup left after rm -f: %v", left)
	}
}
