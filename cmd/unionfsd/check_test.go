package main

import (
	"os"
	"strings"
	"testing"
)

// TestCheckCLI damages an upper on purpose, checks it, is refused a repair
// while the union is mounted, repairs it unmounted and finds it clean.
func TestCheckCLI(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	if err := os.MkdirAll(b.work, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		b.up + "/.wh.ghost":        "", // hides nothing
		b.up + "/b":                "b from up\n",
		b.up + "/.wh.b":            "", // beside its entry
		b.work + "/cow-tmp-1234-1": "half",
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"check", b.up, b.work, b.l2, b.l1}
	r := runCLI(t, runOpts{}, args...)
	if r.code != exitProblems {
		t.Errorf("check: exit %d, want %d (stderr %q)", r.code, exitProblems, r.stderr)
	}
	assertLines(t, "check", r.stdout,
		`^whiteout-hides-nothing `+b.up+`/\.wh\.ghost$`,
		`^  fix: remove the whiteout$`,
		`^whiteout-beside-entry `+b.up+`/\.wh\.b$`,
		`^temp-file `+b.work+`/cow-tmp-1234-1$`,
		`^3 problems found; unionfsd check --repair fixes 3 of them$`)
	if _, err := os.Lstat(b.up + "/.wh.ghost"); err != nil {
		t.Errorf("check without --repair changed the upper: %v", err)
	}

	pid := mountBackground(t, b, "--workdir", b.work, b.up+":"+b.l2+":"+b.l1, b.mnt)
	r = runCLI(t, runOpts{}, "check", "--repair", b.up, b.work)
	assertOneErrorLine(t, r, 1, b.up, "in use by the unionfsd mount "+b.mnt)
	assertOneErrorLine(t, runCLI(t, runOpts{}, "check", b.mnt, b.work), 1, b.mnt, "a union mount, not an upper dir")
	r = runCLI(t, runOpts{}, "check", b.up, b.work)
	assertLines(t, "check while mounted", r.stdout,
		`^note: `+b.up+` is in use by the unionfsd mount `+b.mnt,
		`^note: lower layers taken from the mount at `+b.mnt+`$`,
		`^whiteout-hides-nothing `+b.up+`/\.wh\.ghost$`)
	stopDaemon(t, pid)

	r = runCLI(t, runOpts{}, append([]string{"check", "--repair"}, args[1:]...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "  repaired\n") || !strings.HasSuffix(r.stdout, "all repaired\n") {
		t.Errorf("check --repair: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, runOpts{}, args...)
	if r.code != 0 || r.stdout != "no problems found\n" {
		t.Errorf("check after repair: exit %d stdout %q", r.code, r.stdout)
	}
	if got := readFile(t, b.up+"/b"); got != "b from up\n" {
		t.Errorf("repair touched the entry beside the stray whiteout: %q", got)
	}
	assertNothingLeft(t, b)
}

func TestCheckCLIUsage(t *testing.T) {
	r := runCLI(t, runOpts{}, "check", "/tmp")
	if r.code != exitUsage {
		t.Errorf("check UPPER alone: exit %d, want 2", r.code)
	}
	r = runCLI(t, runOpts{}, "check", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "whiteout-hides-nothing") {
		t.Errorf("check --help: %d %q", r.code, r.stdout)
	}
}
