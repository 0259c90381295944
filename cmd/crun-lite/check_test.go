package main

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestKillAnywhereThenCheck kills crun-lite with SIGKILL at random points
// of import, commit, rmi and rm. After each kill, check may find only
// repairable things; check --repair fixes them all, a second check finds
// nothing, and the interrupted command, run again, works.
func TestKillAnywhereThenCheck(t *testing.T) {
	e := newEnv(t)
	seed := time.Now().UnixNano()
	t.Logf("random kill points from seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	noise := func(n int) []byte {
		b := make([]byte, n)
		rnd.Read(b)
		return b
	}
	big := filepath.Join(t.TempDir(), "big.tar")
	err := imagetest.WriteDockerArchive(big, imagetest.Image{Names: []string{"big:1"}, Layers: []imagetest.Layer{
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.BigFile("a", noise(6<<20), 0o644), imagetest.Dir("d", 0o755)}},
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.BigFile("d/b", noise(6<<20), 0o644)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	upper := t.TempDir()
	for i := 0; i < 4; i++ {
		if err := os.WriteFile(filepath.Join(upper, "f"+string(rune('0'+i))), noise(2<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	has := func(what, name string) bool {
		return strings.Contains(e.mustRun(what), name)
	}
	ops := []struct {
		name  string
		setup func()   // brings the store to where the command can run
		args  []string // the command to kill
	}{
		{"import", func() {
			if has("images", "big") {
				e.mustRun("rmi", "big:1")
			}
		}, []string{"import", big}},
		{"commit", func() {
			if has("images", "committed") {
				e.mustRun("rmi", "committed:1")
			}
		}, []string{"commit", "--upper", upper, "--from", "busybox", "committed:1"}},
		{"rmi", func() {
			if !has("images", "big") {
				e.mustRun("import", big)
			}
		}, []string{"rmi", "big:1"}},
		{"rm", func() {
			if !has("ps", "gone") {
				e.mustRun("run", "--name", "gone", "busybox", "sh", "-c", "for i in $(seq 200); do echo $i > /f$i; done")
			}
		}, []string{"rm", "gone"}},
	}
	const kills = 6
	for _, op := range ops {
		// One full run tells how long the command takes.
		op.setup()
		start := time.Now()
		e.mustRun(op.args...)
		full := time.Since(start)
		for i := 0; i < kills; i++ {
			op.setup()
			delay := time.Duration(rnd.Int63n(int64(full) + 1))
			cmd := e.cmd(context.Background(), op.args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			e.checkRepairs(t, op.name, delay)
			// The command works after the repair (or had finished).
			op.setup()
			e.mustRun(op.args...)
		}
	}
	if r := e.run("check"); r.code != 0 || r.out != "" {
		t.Errorf("check at the end: %v", r)
	}
	// An rm killed after it deleted container.json, fabricated: the rest
	// of the dir is a leftover nothing lists.
	left := filepath.Join(e.store, "containers", strings.Repeat("ab", 32))
	if err := os.MkdirAll(filepath.Join(left, "upper", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.run("check")
	if r.code != 1 || !strings.Contains(r.out, "containers/"+strings.Repeat("ab", 32)+": container dir without a record") {
		t.Errorf("check of a leftover container dir: %v", r)
	}
	e.checkRepairs(t, "rm (fabricated)", 0)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover container dir after repair: %v", err)
	}
}

// checkRepairs runs check, check --repair and check again after a kill.
func (e *env) checkRepairs(t *testing.T, op string, delay time.Duration) {
	t.Helper()
	r := e.run("check")
	if r.code != 0 && r.code != 1 {
		t.Fatalf("%s killed after %v: check: %v", op, delay, r)
	}
	for _, l := range lines(r.out) {
		if !strings.HasSuffix(l, "(repairable)") {
			t.Errorf("%s killed after %v: check found %q", op, delay, l)
		}
	}
	if r.out != "" {
		t.Logf("%s killed after %v: check found\n%s", op, delay, r.out)
	}
	rr := e.run("check", "--repair")
	if rr.code != 0 {
		t.Errorf("%s killed after %v: check --repair: %v", op, delay, rr)
	}
	if r2 := e.run("check"); r2.code != 0 || r2.out != "" {
		t.Errorf("%s killed after %v: check after repair: %v", op, delay, r2)
	}
}
