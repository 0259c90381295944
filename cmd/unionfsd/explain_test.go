package main

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/unionfs"
)

// assertLines checks that out has a line matching each pattern.
func assertLines(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)` + p).MatchString(out) {
			t.Errorf("%s: no line matching %s in:\n%s", what, p, out)
		}
	}
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(t, runOpts{}, args...)
	if r.code != 0 {
		t.Fatalf("unionfsd %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// TestExplainCLI explains paths of a live mount in every form of the
// command line, and of the same layers after the mount is gone.
func TestExplainCLI(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	pid := mountBackground(t, b, b.up+":"+b.l2+":"+b.l1, b.mnt)
	if _, err := inspect.LoadRecord(b.mnt); err != nil {
		t.Fatalf("no record of the mount while it runs: %v", err)
	}
	if err := os.Remove(b.mnt + "/a"); err != nil {
		t.Fatal(err)
	}
	shadow := []string{
		`^path /b in ` + regexp.QuoteMeta(b.mnt) + `$`,
		`^  0 \(upper\) +` + regexp.QuoteMeta(b.up) + ` +absent +absent +not there$`,
		`^  1 +` + regexp.QuoteMeta(b.l2) + ` +file, 10 B +wins +the topmost layer that has the name$`,
		`^  2 +` + regexp.QuoteMeta(b.l1) + ` +file, 10 B +shadowed +shadowed by layer 1$`,
		`^answer: file from layer 1, the topmost layer that has it; it shadows layer 2$`,
	}
	assertLines(t, "explain MNT /b", runOK(t, "explain", b.mnt, "/b"), shadow...)
	assertLines(t, "explain MNT/b", runOK(t, "explain", b.mnt+"/b"), shadow...)
	assertLines(t, "explain MNT /a", runOK(t, "explain", b.mnt, "a"),
		`^  0 \(upper\) +\S+ +whiteout \.wh\.a +whiteout +\.wh\.a deletes the name`,
		`^  2 +\S+ +file, 10 B +hidden +deleted by \.wh\.a in layer 0$`,
		`^answer: not found: deleted by the whiteout in layer 0$`)

	var e unionfs.Explanation
	if err := json.Unmarshal([]byte(runOK(t, "explain", "--json", b.mnt, "/dir")), &e); err != nil {
		t.Fatalf("explain --json: %v", err)
	}
	if !e.Found || e.Type != "dir" || len(e.Chain) != 1 || e.Chain[0] != 2 {
		t.Errorf("explain --json /dir: %+v", e)
	}

	stopDaemon(t, pid)
	if _, err := inspect.LoadRecord(b.mnt); !errors.Is(err, inspect.ErrNoRecord) || strings.Contains(err.Error(), "stale") {
		t.Errorf("record after the daemon ended: %v, want it removed", err)
	}
	r := runCLI(t, runOpts{}, "explain", b.mnt, "/b")
	assertOneErrorLine(t, r, 1, b.mnt, "no unionfsd mount recorded")
	if !strings.Contains(r.stderr, "--layers") {
		t.Errorf("no-record error does not point to --layers: %q", r.stderr)
	}
	shadow[0] = `^path /b$`
	assertLines(t, "explain --layers", runOK(t, "explain", "--layers", b.up+":"+b.l2+":"+b.l1, "/b"), shadow...)
	assertLines(t, "explain --upper --lowers", runOK(t, "explain", "--upper", b.up, "--lowers", b.l2+":"+b.l1, "b"), shadow...)
	assertNothingLeft(t, b)
}

func TestExplainCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"explain"},
		{"explain", "--layers", "a:b"},
		{"explain", "--layers", "a:b", "--lowers", "c", "/x"},
		{"explain", "--upper", "u", "/x"},
		{"explain", "a", "b", "c"},
		{"explain", "--bogus", "/x"},
	} {
		r := runCLI(t, runOpts{}, args...)
		if r.code != exitUsage || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("unionfsd %q: exit %d stderr %q, want one usage error line and exit 2", args, r.code, r.stderr)
		}
	}
	r := runCLI(t, runOpts{}, "explain", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "unionfsd explain [--json] MOUNTPOINT PATH") {
		t.Errorf("explain --help: %d %q", r.code, r.stdout)
	}
}
