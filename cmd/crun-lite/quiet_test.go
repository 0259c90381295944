package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

var shortIDLine = regexp.MustCompile(`^[0-9a-f]{12}$`)

// TestImagesQuiet: `images -q` prints only IDs, as docker's does, so
// `rmi $(images -q)` removes every image (it used to print the table and
// hand its header words to rmi).
func TestImagesQuiet(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	src := filepath.Join(dir, "demo.tar")
	if err := imagetest.WriteDockerArchive(src, testImage()); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, root, "import", src); code != exitOK {
		t.Fatalf("import: %s", errOut)
	}
	code, out, _ := cli(t, root, "images", "-q")
	ids := strings.Fields(out)
	if code != exitOK || len(ids) != 1 || !shortIDLine.MatchString(ids[0]) {
		t.Fatalf("images -q: %d %q", code, out)
	}
	if code, _, errOut := cli(t, root, append([]string{"rmi"}, ids...)...); code != exitOK {
		t.Fatalf("rmi $(images -q): %d %q", code, errOut)
	}
	if code, out, _ := cli(t, root, "images", "-q"); code != exitOK || out != "" {
		t.Errorf("images -q after rmi: %d %q", code, out)
	}
	// The global -q still means quiet before the command.
	if code, _, _ := cli(t, root, "-q", "images"); code != exitOK {
		t.Errorf("-q images: exit %d", code)
	}
}

// TestPsQuiet: `ps -q` and `ps -a -q` print only container IDs.
func TestPsQuiet(t *testing.T) {
	e := newEnv(t)
	e.mustRun("run", "--name", "q1", "busybox", "true")
	for _, args := range [][]string{{"ps", "-q"}, {"ps", "-a", "-q"}} {
		out := e.mustRun(args...)
		ids := strings.Fields(out)
		if len(ids) != 1 || !shortIDLine.MatchString(ids[0]) {
			t.Errorf("%v: %q", args, out)
		}
	}
	if out := e.mustRun("ps", "-q", "--no-trunc"); !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out) {
		t.Errorf("ps -q --no-trunc: %q", out)
	}
}

// TestRunDockerShorthands: `run -h NAME` is docker's hostname (it printed
// help) and `-it` is accepted; help stays on --help.
func TestRunDockerShorthands(t *testing.T) {
	e := newEnv(t)
	if out := e.mustRun("run", "--rm", "-i", "-h", "box", "busybox", "hostname"); out != "box\n" {
		t.Errorf("run -i -h box: %q", out)
	}
	if out := e.mustRun("run", "--help"); !strings.Contains(out, "--hostname") {
		t.Errorf("run --help: %q", out)
	}
}
