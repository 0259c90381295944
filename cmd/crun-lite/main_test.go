package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// cli runs crun-lite in-process with --root and returns exit code and output.
func cli(t *testing.T, root string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(append([]string{"--root", root}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func testImage() imagetest.Image {
	return imagetest.Image{Names: []string{"demo:1"}, Cmd: []string{"/bin/app"}, Layers: []imagetest.Layer{
		{Entries: []imagetest.Entry{imagetest.Dir("bin", 0o755), imagetest.File("bin/app", "app", 0o755), imagetest.File("etc/gone", "x", 0o644)}},
		{Compression: imagetest.Zstd, Entries: []imagetest.Entry{imagetest.File("etc/conf", "conf", 0o644)}},
	}}
}

func TestImageCommands(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	src := filepath.Join(dir, "demo.tar")
	if err := imagetest.WriteDockerArchive(src, testImage()); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, root, "import", src)
	if code != exitOK || !strings.Contains(out, "demo:1") {
		t.Fatalf("import: %d %q %q", code, out, errOut)
	}
	if errOut != "" {
		t.Errorf("import printed to stderr in a pipe: %q", errOut)
	}
	code, out, _ = cli(t, root, "images")
	if code != exitOK || !strings.Contains(out, "demo") || !strings.Contains(out, "IMAGE ID") {
		t.Errorf("images: %d %q", code, out)
	}
	code, out, _ = cli(t, root, "inspect", "demo:1")
	var insp struct {
		ID     string
		Layers []struct{ Dir string }
		Config struct{ Config struct{ Cmd []string } }
	}
	if code != exitOK || json.Unmarshal([]byte(out), &insp) != nil || len(insp.Layers) != 2 || insp.Config.Config.Cmd[0] != "/bin/app" {
		t.Fatalf("inspect: %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(insp.Layers[0].Dir, "bin/app")); err != nil {
		t.Errorf("inspect layer dir: %v", err)
	}

	upper := filepath.Join(dir, "upper")
	os.MkdirAll(filepath.Join(upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(upper, "etc/added"), []byte("added"), 0o644)
	os.WriteFile(filepath.Join(upper, "etc/.wh.gone"), nil, 0o644)
	code, out, errOut = cli(t, root, "commit", "--upper", upper, "--from", "demo:1", "-m", "cli commit", "demo:2")
	if code != exitOK || !strings.Contains(out, "demo:2") {
		t.Fatalf("commit: %d %q %q", code, out, errOut)
	}
	for _, format := range []string{"docker-archive", "oci"} {
		p := filepath.Join(dir, "out-"+format+".tar")
		if code, _, errOut := cli(t, root, "export", "demo:2", "-o", p, "--format", format); code != exitOK {
			t.Fatalf("export %s: %d %q", format, code, errOut)
		}
		root2 := filepath.Join(dir, "store-"+format)
		if code, out, errOut := cli(t, root2, "import", p); code != exitOK || !strings.Contains(out, "demo:2") {
			t.Fatalf("re-import %s: %d %q %q", format, code, out, errOut)
		}
	}
	code, out, _ = cli(t, root, "rmi", "demo:2")
	if code != exitOK || !strings.Contains(out, "Deleted: sha256:") {
		t.Errorf("rmi: %d %q", code, out)
	}
	if code, _, errOut := cli(t, root, "inspect", "demo:2"); code != exitNotFound || !strings.Contains(errOut, "image not found: demo:2") {
		t.Errorf("inspect removed image: %d %q", code, errOut)
	}
}

func TestExitCodes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, []byte("not a tar at all, not even close"), 0o644)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{nil, exitUsage, "usage: crun-lite"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"import"}, exitUsage, "want one FILE or DIR"},
		{[]string{"import", "--bogus", "x"}, exitUsage, "unknown flag: --bogus"},
		{[]string{"export", "x"}, exitUsage, "-o FILE is required"},
		{[]string{"export", "x", "-o", "y", "--format", "zip"}, exitUsage, `unknown format "zip"`},
		{[]string{"commit", "--upper", "/tmp", "n:1"}, exitUsage, "--upper and --from go together"},
		{[]string{"inspect", "nope"}, exitNotFound, "image not found: nope"},
		{[]string{"rmi", "nope"}, exitNotFound, "image not found: nope"},
		{[]string{"import", bad}, exitFailure, "bad.tar"},
		{[]string{"import", "/does/not/exist"}, exitFailure, "no such file or directory"},
	}
	for _, tc := range cases {
		code, _, errOut := cli(t, root, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("crun-lite %v: exit %d, stderr %q; want exit %d with %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
	code, _, errOut := cli(t, root, "commit", "no-such-container", "n:1")
	if code == exitOK || !strings.Contains(errOut, "no-such-container") {
		t.Errorf("commit of a missing container: exit %d %q", code, errOut)
	}
	if code, out, _ := cli(t, root, "--help"); code != exitOK || !strings.Contains(out, "import") {
		t.Errorf("--help: %d %q", code, out)
	}
}
