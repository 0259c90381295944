package layers_test

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// oneLayer is an OCI-importable image of a single layer.
func oneLayer(entries ...imagetest.Entry) imagetest.Image {
	return imagetest.Image{Names: []string{"hostile:1"}, Layers: []imagetest.Layer{{Entries: entries}}}
}

// assertUntouched checks that a failed import left nothing in the store and
// nothing outside it.
func assertUntouched(t *testing.T, s *layers.Store, victim string) {
	t.Helper()
	for _, d := range []string{"layers", "blobs/sha256", "tmp"} {
		if got := listDir(t, filepath.Join(s.Root(), d)); len(got) != 0 {
			t.Errorf("store %s not empty after a failed import: %v", d, got)
		}
	}
	if imgs, err := s.Images(); err != nil || len(imgs) != 0 {
		t.Errorf("images after a failed import: %v %v", imgs, err)
	}
	if got := listDir(t, victim); len(got) != 0 {
		t.Errorf("files written outside the store: %s has %v", victim, got)
	}
	if got := listDir(t, filepath.Dir(s.Root())); len(got) != 1 {
		t.Errorf("store parent holds %v, want only the store", got)
	}
}

func TestHostileLayers(t *testing.T) {
	victim := t.TempDir()
	long := strings.Repeat("x", 256)
	deep := strings.Repeat("d/", 2100) + "f"
	climb := strings.Repeat("../", 40) + strings.TrimPrefix(victim, "/") // from any depth: the victim
	rawFile := func(name string) imagetest.Entry {
		return imagetest.Raw(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: 4, Format: tar.FormatPAX}, []byte("evil"))
	}
	cases := []struct {
		name    string
		entries []imagetest.Entry
		want    string // regexp of the error
	}{
		{"dotdot", []imagetest.Entry{rawFile("../escape")}, `entry "\.\./escape": path contains "\.\."`},
		{"dotdot-inside", []imagetest.Entry{rawFile("a/../../escape")}, `entry "a/\.\./\.\./escape": path contains "\.\."`},
		{"absolute", []imagetest.Entry{rawFile(victim + "/abs")}, `entry ".*/abs": absolute path`},
		// A link that climbs above the layer root is legal (see
		// TestClimbingSymlinksKept); writing through it never is.
		{"write-through-climbing-symlink", []imagetest.Entry{imagetest.Symlink("a/link", climb), rawFile("a/link/pwned")},
			`entry "a/link/pwned": parent "a/link" is or goes through a symlink`},
		{"dir-through-climbing-symlink", []imagetest.Entry{imagetest.Symlink("a/link", climb), imagetest.Dir("a/link/sub", 0o755)},
			`entry "a/link/sub/": parent "a/link" is or goes through a symlink`},
		{"hardlink-through-climbing-symlink", []imagetest.Entry{imagetest.Symlink("a/link", climb), rawFile("f"), imagetest.Hardlink("a/link/hl", "f")},
			`entry "a/link/hl": parent "a/link" is or goes through a symlink`},
		{"hardlink-to-climbing-symlink-target", []imagetest.Entry{imagetest.Symlink("a/link", climb), imagetest.Hardlink("hl", "a/link/victim")},
			`entry "hl": .*(symlink|escapes)`},
		{"write-through-abs-symlink", []imagetest.Entry{imagetest.Symlink("evil", victim), rawFile("evil/pwned")},
			`entry "evil/pwned": parent "evil" is or goes through a symlink`},
		{"write-through-rel-symlink", []imagetest.Entry{imagetest.Dir("sub", 0o755), imagetest.Symlink("sub/up", ".."), rawFile("sub/up/pwned")},
			`entry "sub/up/pwned": parent "sub/up" is or goes through a symlink`},
		{"dir-through-symlink", []imagetest.Entry{imagetest.Symlink("evil", victim), imagetest.Dir("evil/sub", 0o755)},
			`entry "evil/sub/": parent "evil" is or goes through a symlink`},
		{"hardlink-escape", []imagetest.Entry{imagetest.Hardlink("hl", "../../etc/passwd")}, `entry "hl": hardlink target "\.\./\.\./etc/passwd" escapes the layer`},
		{"hardlink-absolute", []imagetest.Entry{imagetest.Hardlink("hl", "/etc/passwd")}, `entry "hl": hardlink target "/etc/passwd" escapes the layer`},
		{"hardlink-through-symlink", []imagetest.Entry{imagetest.Symlink("s", "/etc"), imagetest.Hardlink("hl", "s/passwd")},
			`entry "hl": parent "s" is or goes through a symlink`},
		{"long-component", []imagetest.Entry{rawFile("a/" + long)}, `entry "a/x+": path component longer than 255 bytes`},
		{"long-path", []imagetest.Entry{rawFile(deep)}, `entry "(d/)+\.\.\.": path longer than 4095 bytes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			if err := imagetest.WriteOCILayout(dir, oneLayer(tc.entries...)); err != nil {
				t.Fatal(err)
			}
			s := openStore(t)
			_, err := s.Import(dir, layers.ImportOptions{})
			if err == nil {
				t.Fatal("hostile layer imported")
			}
			t.Logf("error: %v", err)
			if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error %q\n  does not match %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			assertUntouched(t, s, victim)
		})
	}
}

// rewriteOCI edits the manifest and config of the single image of an OCI
// layout dir, rewriting blobs and index.json so all digests stay consistent.
func rewriteOCI(t *testing.T, dir string, edit func(manifest, config map[string]any)) {
	t.Helper()
	readJSON := func(p string, v any) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(d string) string { return filepath.Join(dir, "blobs/sha256", strings.TrimPrefix(d, "sha256:")) }
	writeBlob := func(v any) (string, int) {
		data, _ := json.Marshal(v)
		d := imagetest.Digest(data)
		os.WriteFile(blob(d), data, 0o644)
		return d, len(data)
	}
	var idx map[string]any
	readJSON(filepath.Join(dir, "index.json"), &idx)
	mdesc := idx["manifests"].([]any)[0].(map[string]any)
	var manifest, config map[string]any
	readJSON(blob(mdesc["digest"].(string)), &manifest)
	cdesc := manifest["config"].(map[string]any)
	readJSON(blob(cdesc["digest"].(string)), &config)
	edit(manifest, config)
	cdesc["digest"], cdesc["size"] = writeBlob(config)
	mdesc["digest"], mdesc["size"] = writeBlob(manifest)
	data, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644)
}

func TestBadInputs(t *testing.T) {
	victim := t.TempDir()
	img := imagetest.Image{Names: []string{"bad:1"}, Layers: []imagetest.Layer{
		{Entries: []imagetest.Entry{imagetest.File("a", strings.Repeat("a", 100000), 0o644)}},
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.File("g", strings.Repeat("gzip data ", 10000), 0o644)}},
		{Compression: imagetest.Zstd, Entries: []imagetest.Entry{imagetest.File("z", strings.Repeat("zstd data ", 10000), 0o644)}},
	}}
	built, err := imagetest.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := imagetest.BuildLayer(imagetest.Layer{Entries: []imagetest.Entry{imagetest.File("other", "x", 0o644)}})
	layerBlob := func(dir string, i int) string {
		return filepath.Join(dir, "blobs/sha256", strings.TrimPrefix(built.Layers[i].Digest, "sha256:"))
	}
	// dockerLayer finds layer i of a docker-save dir.
	dockerLayer := func(t *testing.T, dir string, i int) string {
		var m []struct{ Layers []string }
		data, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
		json.Unmarshal(data, &m)
		return filepath.Join(dir, m[0].Layers[i])
	}
	corruptMiddle := func(t *testing.T, p string) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(data) / 3; i < len(data)/3+16; i++ {
			data[i] ^= 0x5a
		}
		os.WriteFile(p, data, 0o644)
	}
	cases := []struct {
		name   string
		docker bool                           // docker-save dir instead of OCI layout
		tarred bool                           // pack the dir into a tar after mutate
		mutate func(t *testing.T, dir string) // breaks the source
		want   string                         // regexp of the error
	}{
		{"blob-digest-mismatch", false, false, func(t *testing.T, dir string) {
			os.WriteFile(layerBlob(dir, 0), other.Blob, 0o644)
		}, `layer 1 \(blobs/sha256/[0-9a-f]{64}\): (size|digest) mismatch`},
		{"blob-digest-mismatch-same-size", false, false, func(t *testing.T, dir string) {
			data, _ := os.ReadFile(layerBlob(dir, 0))
			data[len(data)-2000] ^= 1 // inside the tar padding: still a valid tar
			os.WriteFile(layerBlob(dir, 0), data, 0o644)
		}, `layer 1 \(blobs/sha256/[0-9a-f]{64}\): digest mismatch: expected ` + built.Layers[0].Digest + `, actual sha256:[0-9a-f]{64}$`},
		{"diff-id-mismatch", false, false, func(t *testing.T, dir string) {
			rewriteOCI(t, dir, func(m, c map[string]any) {
				c["rootfs"].(map[string]any)["diff_ids"].([]any)[1] = other.DiffID
			})
		}, `layer 2 \(blobs/sha256/[0-9a-f]{64}\): diff_id mismatch: config expects ` + other.DiffID + `, actual ` + built.Layers[1].DiffID},
		{"config-digest-mismatch-docker", true, true, func(t *testing.T, dir string) {
			name := filepath.Join(dir, strings.TrimPrefix(built.ConfigDigest(), "sha256:")+".json")
			data, _ := os.ReadFile(name)
			os.WriteFile(name, append(data, ' '), 0o644)
		}, `config [0-9a-f]{64}\.json: digest mismatch: expected ` + built.ConfigDigest()},
		{"docker-diff-id-mismatch", true, true, func(t *testing.T, dir string) {
			os.WriteFile(dockerLayer(t, dir, 0), other.Blob, 0o644)
		}, `layer 1 \([0-9a-f]{64}/layer.tar\): diff_id mismatch: config expects ` + built.Layers[0].DiffID + `, actual ` + other.DiffID},
		{"gzip-corrupt", true, true, func(t *testing.T, dir string) {
			corruptMiddle(t, dockerLayer(t, dir, 1))
		}, `layer 2 \([0-9a-f]{64}/layer.tar\): (read layer: |entry "g": )?gzip: [a-z]`},
		{"zstd-corrupt", true, true, func(t *testing.T, dir string) {
			corruptMiddle(t, dockerLayer(t, dir, 2))
		}, `layer 3 \([0-9a-f]{64}/layer.tar\): (read layer: |entry "z": )?zstd: [a-z]`},
		{"missing-blob", false, false, func(t *testing.T, dir string) {
			os.Remove(layerBlob(dir, 2))
		}, `layer 3: blob blobs/sha256/[0-9a-f]{64} is missing from the layout`},
		{"missing-layer-in-archive", true, true, func(t *testing.T, dir string) {
			os.Remove(dockerLayer(t, dir, 1))
		}, `[0-9a-f]{64}/layer.tar: missing from the archive`},
		{"malformed-manifest-json", true, true, func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`[{"Config": `), 0o644)
		}, `\.tar: manifest.json: malformed JSON: `},
		{"malformed-index-json", false, false, func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests": [}`), 0o644)
		}, `layout: index.json: malformed JSON: `},
		{"unknown-layer-media-type", false, false, func(t *testing.T, dir string) {
			rewriteOCI(t, dir, func(m, c map[string]any) {
				m["layers"].([]any)[0].(map[string]any)["mediaType"] = "application/x-mystery"
			})
		}, `layer 1: unknown media type "application/x-mystery"`},
		{"unknown-manifest-media-type", false, false, func(t *testing.T, dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
			data = []byte(strings.Replace(string(data), "application/vnd.oci.image.manifest.v1+json", "application/x-weird", 1))
			os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644)
		}, `unknown media type "application/x-weird"`},
		{"not-an-image", false, false, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "index.json"))
			os.Remove(filepath.Join(dir, "oci-layout"))
		}, `not a docker-save archive or OCI layout`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			write := imagetest.WriteOCILayout
			if tc.docker {
				write = imagetest.WriteDockerDir
			}
			if err := write(dir, img); err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, dir)
			src := dir
			if tc.tarred {
				src = dir + ".tar"
				tarDir(t, dir, src)
			}
			s := openStore(t)
			_, err := s.Import(src, layers.ImportOptions{})
			if err == nil {
				t.Fatal("bad input imported")
			}
			t.Logf("error: %v", err)
			if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error %q\n  does not match %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), src) {
				t.Errorf("error %q does not name the file %s", err, src)
			}
			assertUntouched(t, s, victim)
		})
	}
}

func TestTruncatedArchive(t *testing.T) {
	src := filepath.Join(t.TempDir(), "img.tar")
	if err := imagetest.WriteDockerArchive(src, richImage()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(src)
	// Cut in the middle of the data: the scan must see it, not the extraction.
	os.WriteFile(src, data[:len(data)/2], 0o644)
	s := openStore(t)
	_, err := s.Import(src, layers.ImportOptions{})
	if err == nil || !regexp.MustCompile(`^import .*img\.tar: truncated archive`).MatchString(err.Error()) {
		t.Fatalf("truncated archive: %v", err)
	}
	assertUntouched(t, s, t.TempDir())
}

// tarDir packs dir into a tar at dst (members relative to dir).
func tarDir(t *testing.T, dir, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestClimbingSymlinksKept: relative links that climb above the layer root
// are legal in images (they resolve inside the container) and are kept
// exactly as written.
func TestClimbingSymlinksKept(t *testing.T) {
	links := map[string]string{
		"usr/lib64": "../lib",
		"a/b/up":    "../../../../etc",
		"top":       "..",
		"a/dots":    "./../.././x/../../y",
		"abs":       "/etc/passwd",
	}
	var entries []imagetest.Entry
	for name, target := range links {
		entries = append(entries, imagetest.Symlink(name, target))
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := imagetest.WriteOCILayout(dir, oneLayer(entries...)); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	imgs, err := s.Import(dir, layers.ImportOptions{})
	if err != nil {
		t.Fatalf("import of an image with climbing symlinks: %v", err)
	}
	layer := s.LayerDir(imgs[0].Layers[0].ChainID)
	for name, target := range links {
		if got, err := os.Readlink(filepath.Join(layer, name)); err != nil || got != target {
			t.Errorf("%s -> %q, %v; want -> %q", name, got, err, target)
		}
	}
}
