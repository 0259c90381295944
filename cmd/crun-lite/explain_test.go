package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestExplainImage: crun-lite explain lists an image's layers top first,
// and for a path names the layer that gives it and the layers that hide
// or delete it, as unionfsd explain does for a mount.
func TestExplainImage(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	src := filepath.Join(dir, "img.tar")
	img := imagetest.Image{Names: []string{"layered:1"}, Layers: []imagetest.Layer{
		{Entries: []imagetest.Entry{imagetest.Dir("etc", 0o755), imagetest.File("etc/conf", "base", 0o644),
			imagetest.Dir("d", 0o755), imagetest.File("d/x", "x", 0o644), imagetest.File("gone", "g", 0o644)}},
		{Entries: []imagetest.Entry{imagetest.Dir("etc", 0o755), imagetest.File("etc/conf", "changed", 0o644), imagetest.Whiteout("gone")}},
		{Entries: []imagetest.Entry{imagetest.Opaque("d"), imagetest.File("d/y", "y", 0o644)}},
	}}
	if err := imagetest.WriteDockerArchive(src, img); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, root, "import", src); code != exitOK {
		t.Fatalf("import: %d %q %q", code, out, errOut)
	}

	code, out, errOut := cli(t, root, "explain", "--json", "layered:1")
	var rows []explainedLayer
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 3 {
		t.Fatalf("explain --json: %d %q %q", code, out, errOut)
	}
	top, err := imagetest.BuildLayer(img.Layers[2])
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Layer != 0 || rows[0].DiffID != top.DiffID {
		t.Errorf("first row is not the top layer: %+v, top diff_id %s", rows[0], top.DiffID)
	}
	code, out, _ = cli(t, root, "explain", "layered:1")
	if code != exitOK || !strings.Contains(out, "3 layers, top first") || !strings.Contains(out, top.DiffID[:19]) {
		t.Errorf("explain: %d %q", code, out)
	}

	// path -> (layer, status) rows that must appear, top layer = 0.
	for p, want := range map[string][]string{
		"/etc/conf": {"  0 ", "absent", "  1 ", "wins", "  2 ", "shadowed"},
		"/gone":     {"  1 ", "whiteout", "  2 ", "hidden"},
		"/d/x":      {"  2 ", "below the opaque dir in layer 0"},
		"/d/y":      {"  0 ", "wins"},
	} {
		code, out, errOut := cli(t, root, "explain", "layered:1", p)
		if code != exitOK {
			t.Errorf("explain %s: %d %q", p, code, errOut)
			continue
		}
		lines := strings.Split(out, "\n")
		for i := 0; i < len(want); i += 2 {
			found := false
			for _, l := range lines {
				if strings.HasPrefix(l, want[i]) && strings.Contains(l, want[i+1]) {
					found = true
				}
			}
			if !found {
				t.Errorf("explain %s: no row for layer%s saying %q:\n%s", p, want[i], want[i+1], out)
			}
		}
	}
	if code, _, errOut := cli(t, root, "explain", "nosuch:1"); code == exitOK || strings.Count(errOut, "\n") != 1 {
		t.Errorf("explain of an unknown image: %d %q", code, errOut)
	}
}
