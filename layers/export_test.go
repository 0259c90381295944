package layers_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

func diffIDs(img *layers.Image) []digest.Digest {
	var out []digest.Digest
	for _, l := range img.Layers {
		out = append(out, l.DiffID)
	}
	return out
}

func sameDigests(t *testing.T, what string, a, b *layers.Image, sameManifest bool) {
	t.Helper()
	if a.ID != b.ID {
		t.Errorf("%s: image ID %s != %s", what, a.ID, b.ID)
	}
	if sameManifest && a.ManifestDigest != b.ManifestDigest {
		t.Errorf("%s: manifest %s != %s", what, a.ManifestDigest, b.ManifestDigest)
	}
	da, db := diffIDs(a), diffIDs(b)
	if len(da) != len(db) {
		t.Fatalf("%s: %d vs %d layers", what, len(da), len(db))
	}
	for i := range da {
		if da[i] != db[i] || a.Layers[i].ChainID != b.Layers[i].ChainID {
			t.Errorf("%s: layer %d differs: %s vs %s", what, i, da[i], db[i])
		}
		if sameManifest && a.Layers[i].Digest != b.Layers[i].Digest {
			t.Errorf("%s: layer %d blob %s vs %s", what, i, a.Layers[i].Digest, b.Layers[i].Digest)
		}
	}
}

func TestExportRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "rich.oci")
	if err := imagetest.WriteOCILayout(src, richImage()); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	orig := mustImport(t, s, src)[0]
	out := t.TempDir()
	for _, f := range []layers.Format{layers.FormatDockerArchive, layers.FormatOCIArchive, layers.FormatOCIDir} {
		t.Run(string(f), func(t *testing.T) {
			p := filepath.Join(out, string(f))
			if err := s.Export("rich:v1", p, f, layers.ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t)
			again := mustImport(t, s2, p)
			if len(again) != 1 || len(again[0].Names) != 1 || again[0].Names[0] != "rich:v1" {
				t.Fatalf("re-imported %v", again[0].Names)
			}
			// docker-archive carries uncompressed layers, so only the
			// config and the diff IDs survive; OCI keeps every blob.
			sameDigests(t, string(f), orig, again[0], f != layers.FormatDockerArchive)
			for i, d := range s.LayerDirs(orig) {
				diffTrees(t, snapshot(t, d, true), snapshot(t, s2.LayerDirs(again[0])[i], true))
			}
			// Export is deterministic: the same image gives the same bytes.
			if f != layers.FormatOCIDir {
				p2 := p + ".2"
				if err := s2.Export("rich:v1", p2, f, layers.ExportOptions{}); err != nil {
					t.Fatal(err)
				}
				a, _ := os.ReadFile(p)
				b, _ := os.ReadFile(p2)
				if f == layers.FormatOCIArchive && string(a) != string(b) {
					t.Errorf("OCI export not reproducible")
				}
			}
		})
	}
}

func needSkopeo(t *testing.T) string {
	p, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed: apt-get install -y skopeo")
	}
	return p
}

func skopeoInspect(t *testing.T, ref string) map[string]any {
	t.Helper()
	out, err := exec.Command(needSkopeo(t), "inspect", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("skopeo inspect output: %v", err)
	}
	return m
}

func TestExportLoadsInSkopeo(t *testing.T) {
	needSkopeo(t)
	src := filepath.Join(t.TempDir(), "rich.tar")
	if err := imagetest.WriteDockerArchive(src, richImage()); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	img := mustImport(t, s, src)[0]
	dir := t.TempDir()
	docker := filepath.Join(dir, "rich-docker.tar")
	oci := filepath.Join(dir, "rich-oci.tar")
	if err := s.Export("rich:v1", docker, layers.FormatDockerArchive, layers.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Export("rich:v1", oci, layers.FormatOCIArchive, layers.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"docker-archive:" + docker, "oci-archive:" + oci} {
		m := skopeoInspect(t, ref)
		got, _ := m["Layers"].([]any)
		if len(got) != 3 {
			t.Errorf("%s: skopeo sees %d layers", ref, len(got))
		}
	}
	if m := skopeoInspect(t, "oci-archive:"+oci); m["Digest"] != img.ManifestDigest.String() {
		t.Errorf("skopeo digest %v, want %s", m["Digest"], img.ManifestDigest)
	}
}

func TestImportSkopeoCopies(t *testing.T) {
	sk := needSkopeo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "rich.tar")
	if err := imagetest.WriteDockerArchive(src, richImage()); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "skopeo-layout")
	zstdArchive := filepath.Join(dir, "skopeo-zstd.tar")
	for _, args := range [][]string{
		{"copy", "docker-archive:" + src, "oci:" + layout + ":v1"},
		{"copy", "--dest-compress", "--dest-compress-format", "zstd", "docker-archive:" + src, "oci-archive:" + zstdArchive + ":v2"},
	} {
		if out, err := exec.Command(sk, args...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
	}
	s := openStore(t)
	a := mustImport(t, s, layout)[0]
	s2 := openStore(t) // same config as a: in s it would only add a name
	b := mustImport(t, s2, zstdArchive)[0]
	if a.Names[0] != "skopeo-layout:v1" {
		t.Errorf("name from ref.name = %v", a.Names)
	}
	if b.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
		t.Errorf("zstd layer media type %s", b.Layers[0].MediaType)
	}
	// skopeo rewrites the config, but the layers are the same content.
	orig := mustImport(t, openStore(t), src)[0]
	for i := range orig.Layers {
		if orig.Layers[i].DiffID != a.Layers[i].DiffID || orig.Layers[i].DiffID != b.Layers[i].DiffID {
			t.Errorf("layer %d diff IDs differ after skopeo copy", i)
		}
	}
	checkBaseLayer(t, s.LayerDirs(a)[2])
	checkBaseLayer(t, s2.LayerDirs(b)[2])
}

func TestRemove(t *testing.T) {
	shared := imagetest.Layer{Entries: []imagetest.Entry{imagetest.File("shared", "s", 0o644)}}
	a := imagetest.Image{Names: []string{"a:1"}, Layers: []imagetest.Layer{shared, {Entries: []imagetest.Entry{imagetest.File("a", "a", 0o644)}}}}
	b := imagetest.Image{Names: []string{"b:1", "b:2"}, Layers: []imagetest.Layer{shared, {Entries: []imagetest.Entry{imagetest.File("b", "b", 0o644)}}}}
	src := filepath.Join(t.TempDir(), "two.tar")
	if err := imagetest.WriteDockerArchive(src, a, b); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	imgs := mustImport(t, s, src)
	sharedDir := s.LayerDirs(imgs[0])[1]
	aTop := s.LayerDirs(imgs[0])[0]

	res, err := s.Remove("b:2") // a name of a multi-name image: untag only
	if err != nil || res.Deleted != "" || len(res.Untagged) != 1 {
		t.Fatalf("rmi b:2: %+v %v", res, err)
	}
	if _, err := s.Remove("a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(aTop); !os.IsNotExist(err) {
		t.Errorf("a's own layer survived rmi: %v", err)
	}
	if _, err := os.Stat(sharedDir); err != nil {
		t.Errorf("shared layer removed while b uses it: %v", err)
	}
	if _, err := s.Remove(imgs[1].ID.Encoded()[:8]); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"layers", "blobs/sha256", "tmp"} {
		if got := listDir(t, filepath.Join(s.Root(), d)); len(got) != 0 {
			t.Errorf("%s not empty after removing everything: %v", d, got)
		}
	}
	if _, err := s.Remove("a:1"); err == nil {
		t.Errorf("removing a missing image succeeded")
	}
}

func TestConcurrentImports(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "rich.tar")
	if err := imagetest.WriteDockerArchive(src, richImage()); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "store")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := layers.Open(root) // separate handles, as separate processes would have
			if err == nil {
				_, err = s.Import(src, layers.ImportOptions{})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := layers.Open(root)
	imgs, err := s.Images()
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images: %d %v", len(imgs), err)
	}
	if got := listDir(t, filepath.Join(root, "layers")); len(got) != 3 {
		t.Errorf("layers: %v", got)
	}
	if got := listDir(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("tmp left: %v", got)
	}
	checkBaseLayer(t, s.LayerDirs(imgs[0])[2])
}
