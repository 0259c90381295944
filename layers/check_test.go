package layers_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestCheckFindsAndRepairs fabricates each state an interrupted command
// can leave, plus one it cannot (a missing blob), and checks that Check
// names each, repair removes exactly the repairable ones, and the image
// and a kept (container) layer survive.
func TestCheckFindsAndRepairs(t *testing.T) {
	src := filepath.Join(t.TempDir(), "layout")
	if err := imagetest.WriteOCILayout(src, oneLayer(imagetest.File("f", "data", 0o644))); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	img := mustImport(t, s, src)[0]
	root := s.Root()
	if p, err := s.Check(nil, false); err != nil || len(p) != 0 {
		t.Fatalf("fresh store: %v %v", p, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	orphanLayer := strings.Repeat("ab", 32)
	keptLayer := strings.Repeat("cd", 32)
	for _, l := range []string{orphanLayer, keptLayer} {
		must(os.MkdirAll(filepath.Join(root, "layers", l, "diff", "ro"), 0o755))
		must(os.Chmod(filepath.Join(root, "layers", l, "diff", "ro"), 0o500))
	}
	must(os.WriteFile(filepath.Join(root, "blobs/sha256", strings.Repeat("ef", 32)), []byte("x"), 0o600))
	must(os.MkdirAll(filepath.Join(root, "tmp", "import-999999999-123", "layers"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "tmp", "gc-"+strings.Repeat("12", 32)), 0o700))
	must(os.WriteFile(filepath.Join(root, ".tmp-images.json-42"), []byte("{"), 0o600))
	// Not repairable: an image's config blob is gone.
	config := filepath.Join(root, "blobs/sha256", img.ID.Encoded())
	saved, err := os.ReadFile(config)
	must(err)
	must(os.Remove(config))

	keep := map[string]bool{keptLayer: true}
	want := []string{
		".tmp-images.json-42: temp file of an interrupted image index write (repairable)",
		"blobs/sha256/" + img.ID.Encoded() + ": image " + img.ID.Encoded()[:12] + " (hostile:1) needs it, but it is missing (not repairable)",
		"blobs/sha256/" + strings.Repeat("ef", 32) + ": orphan blob: no image uses it (repairable)",
		"layers/" + orphanLayer + ": orphan layer: no image or container uses it (repairable)",
		"tmp/gc-" + strings.Repeat("12", 32) + ": left by an interrupted import, commit or removal (repairable)",
		"tmp/import-999999999-123: left by an interrupted import, commit or removal (repairable)",
	}
	check := func(repair bool) []string {
		t.Helper()
		p, err := s.Check(keep, repair)
		must(err)
		var got []string
		for _, x := range p {
			got = append(got, x.String())
		}
		sort.Strings(got)
		return got
	}
	if got := check(false); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("check found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got := check(true)
	for i := range want {
		want[i] = strings.Replace(want[i], "(repairable)", "(repaired)", 1)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("repair did\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := check(false); len(got) != 1 || !strings.Contains(got[0], "not repairable") {
		t.Errorf("after repair: %q, want only the missing blob", got)
	}
	if _, err := os.Stat(filepath.Join(root, "layers", keptLayer)); err != nil {
		t.Errorf("a layer a container uses was removed: %v", err)
	}
	must(os.WriteFile(config, saved, 0o600))
	if got := check(false); len(got) != 0 {
		t.Errorf("after putting the blob back: %q", got)
	}
	if _, err := s.Image("hostile:1"); err != nil {
		t.Errorf("the image after repair: %v", err)
	}
	if _, err := s.Import(src, layers.ImportOptions{Name: "again:1"}); err != nil {
		t.Errorf("import after repair: %v", err)
	}
}
