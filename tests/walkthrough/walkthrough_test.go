// Package walkthrough runs the commands of docs/walkthrough.md and
// docs/runner-walkthrough.md and checks that they still print what the
// documents show, so the documents cannot go stale.
//
// The format it reads: every ```sh block holds commands, each on a line
// starting with "$ ", followed by the output the command prints (stdout
// and stderr together). In the output, a line "..." stands for any number
// of lines and "..." inside a line for any text (times, IDs). Runs of
// spaces compare as one space, so tables may be re-aligned. The document's
// work dir (/tmp/walk, /tmp/runner) stands for a fresh temp dir; other
// fences (```text) are not run.
package walkthrough

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

const (
	marker   = "@@@walkthrough-step "
	runLimit = 3 * time.Minute
)

// page is one executed document.
type page struct {
	doc      string // path from this package
	dir      string // the dir the document works in
	minSteps int    // fewer commands found means the format broke
	// prepare makes what the document asks the reader to have (files in
	// walk, tools in bin) before the commands run.
	prepare func(t *testing.T, walk, bin string)
	// cleanUp, if set, runs before the generic clean-up of mounts and
	// processes (e.g. to delete containers the document left).
	cleanUp func(t *testing.T, walk, bin string)
}

// step is one command of the document and the output it shows.
type step struct {
	line int // in the document
	cmd  string
	want []string
}

// TestWalkthrough runs docs/walkthrough.md, the union filesystem's lesson.
func TestWalkthrough(t *testing.T) {
	requirePrereqs(t)
	runPage(t, page{
		doc: "../../docs/walkthrough.md", dir: "/tmp/walk", minSteps: 20,
		// The document asks the reader for busybox.tar; the test makes it.
		prepare: func(t *testing.T, walk, bin string) {
			if err := imagetest.WriteBusyboxImage(filepath.Join(walk, "busybox.tar")); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// runPage runs every command of the document in one shell, in order, and
// compares each command's output with the document's.
func runPage(t *testing.T, pg page) {
	steps, err := parseDoc(pg.doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < pg.minSteps {
		t.Fatalf("%s: only %d commands found; is the format right?", pg.doc, len(steps))
	}
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	walk := filepath.Join(base, "walk")
	bin := buildTools(t, base)
	if err := os.MkdirAll(walk, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pg.cleanUp != nil {
			pg.cleanUp(t, walk, bin)
		}
		cleanUp(t, base)
	})
	if pg.prepare != nil {
		pg.prepare(t, walk, bin)
	}

	outputs := runSteps(t, steps, base, walk, pg.dir, bin)
	for i, s := range steps {
		got := normalize(strings.ReplaceAll(outputs[i], walk, pg.dir))
		if !matchLines(normalizeLines(s.want), got) {
			t.Errorf("%s:%d: $ %s\n--- the document shows:\n%s\n--- the command printed:\n%s",
				pg.doc, s.line, s.cmd, strings.Join(s.want, "\n"), strings.Join(got, "\n"))
		}
	}
}

// requirePrereqs skips with what to install when the machine cannot run
// the walk-through.
func requirePrereqs(t *testing.T) {
	t.Helper()
	testsupport.RequireFUSE(t)
	if fsys, err := os.ReadFile("/proc/filesystems"); err != nil || !bytes.Contains(fsys, []byte("\toverlay\n")) {
		t.Skip("kernel overlay missing: modprobe overlay")
	}
	for _, tool := range []string{"getfattr", "chroot", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: apt-get install attr coreutils tar", tool)
		}
	}
	if _, err := imagetest.FindBusybox(); err != nil {
		t.Skip(err.Error())
	}
}

// parseDoc reads the commands and outputs of the ```sh blocks.
func parseDoc(p string) ([]step, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var steps []step
	inBlock, sawCmd := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !inBlock:
			inBlock, sawCmd = strings.TrimSpace(line) == "```sh", false
		case strings.HasPrefix(line, "```"):
			inBlock = false
		case strings.HasPrefix(line, "$ "):
			steps = append(steps, step{line: n, cmd: line[2:]})
			sawCmd = true
		case !sawCmd:
			return nil, fmt.Errorf("%s:%d: output before the first \"$ \" command of the block", p, n)
		default:
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
		}
	}
	return steps, sc.Err()
}

// buildTools builds unionfsd and crun-lite into base/bin.
func buildTools(t *testing.T, base string) string {
	t.Helper()
	bin := filepath.Join(base, "bin")
	for _, cmd := range []string{"unionfsd", "crun-lite"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "../../cmd/"+cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", cmd, err, out)
		}
	}
	return bin
}

// runSteps runs all commands in one bash, so that cd and variables carry
// over, and splits the output per command.
func runSteps(t *testing.T, steps []step, base, walk, docDir, bin string) []string {
	t.Helper()
	var script strings.Builder
	script.WriteString("exec 2>&1\n")
	for i, s := range steps {
		fmt.Fprintf(&script, "printf '\\n%s%d\\n'\n%s\n", marker, i, strings.ReplaceAll(s.cmd, docDir, walk))
	}
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", script.String())
	cmd.Dir = base
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("the walk-through did not finish within %v; output so far:\n%s", runLimit, out)
	}
	if err != nil {
		t.Logf("the shell ended with %v (a failing last command?)", err)
	}
	return splitOutputs(t, string(out), len(steps))
}

// splitOutputs cuts the shell's output at the step markers.
func splitOutputs(t *testing.T, out string, n int) []string {
	t.Helper()
	outputs := make([]string, n)
	cur := -1
	for _, line := range strings.SplitAfter(out, "\n") {
		if rest, ok := strings.CutPrefix(line, marker); ok {
			i, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil || i >= n {
				t.Fatalf("bad step marker %q", line)
			}
			cur = i
			continue
		}
		if cur >= 0 {
			outputs[cur] += line
		}
	}
	return outputs
}

// normalize splits output into lines with runs of blanks collapsed and
// trailing empty lines dropped.
func normalize(out string) []string {
	return normalizeLines(strings.Split(out, "\n"))
}

func normalizeLines(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	for len(out) > 0 && out[0] == "" {
		out = out[1:]
	}
	return out
}

// matchLines matches got against want, where a want line "..." matches any
// number of lines.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for k := 0; k <= len(got); k++ {
			if matchLines(want[1:], got[k:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(want[0], got[0]) && matchLines(want[1:], got[1:])
}

// matchLine matches one line; "..." in want matches any text.
func matchLine(want, got string) bool {
	parts := strings.Split(want, "...")
	if len(parts) == 1 {
		return want == got
	}
	if !strings.HasPrefix(got, parts[0]) {
		return false
	}
	got = got[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(got, p)
		if i < 0 {
			return false
		}
		got = got[i+len(p):]
	}
	return strings.HasSuffix(got, parts[len(parts)-1])
}

// cleanUp unmounts whatever the walk-through left mounted under base (its
// unionfsd daemons exit with their mounts) and stops daemons that remain.
func cleanUp(t *testing.T, base string) {
	for _, m := range mountsUnder(base) {
		t.Errorf("the walk-through left %s mounted; unmounting", m)
		if err := unix.Unmount(m, 0); err != nil {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	for _, pid := range processesOf(base) {
		t.Errorf("the walk-through left process %d running; stopping it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append([]string{f[4]}, out...)
		}
	}
	return out
}

// processesOf lists processes whose executable lies under dir (our builds).
func processesOf(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.HasPrefix(exe, dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestMatchLines keeps the matcher honest.
func TestMatchLines(t *testing.T) {
	cases := []struct {
		want, got string
		ok        bool
	}{
		{"a\nb", "a\nb", true},
		{"a\nb", "a\nc", false},
		{"a\n...\nd", "a\nb\nc\nd", true},
		{"a\n...\nd", "a\nd", true},
		{"a\n...", "a", true},
		{"a\n...\nd", "a\nb", false},
		{"copy-up 20 B, ...", "copy-up 20 B, 310µs", true},
		{"x ... y ... z", "x 1 y 2 z", true},
		{"x ... y ... z", "x 1 z 2 y", false},
		{"a", "a\nb", false},
	}
	for _, c := range cases {
		if got := matchLines(strings.Split(c.want, "\n"), strings.Split(c.got, "\n")); got != c.ok {
			t.Errorf("match(%q, %q) = %v, want %v", c.want, c.got, got, c.ok)
		}
	}
}
