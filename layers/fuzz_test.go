package layers

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// Native fuzz targets. Plain `go test` runs each on its seeds (and on any
// crasher kept under testdata/fuzz/<Target>/); `go test -fuzz=FuzzExtract
// ./layers/` explores further.

// extractSeeds are layers from the hostile and format tables: escapes,
// writes through symlinks, links, devices, whiteouts, long names. Symlink
// targets aim at the fuzz target's victim dir next to the extraction root.
func extractSeeds() [][]imagetest.Entry {
	file := func(name string) imagetest.Entry {
		return imagetest.Raw(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: 4, Format: tar.FormatPAX}, []byte("evil"))
	}
	return [][]imagetest.Entry{
		{file("../escape")},
		{file("a/../../escape")},
		{file("/abs")},
		{imagetest.Symlink("a/link", "../../victim"), file("a/link/pwned")},
		{imagetest.Symlink("evil", "../victim"), file("evil/pwned")},
		{imagetest.Symlink("evil", "/tmp"), imagetest.Dir("evil/sub", 0o755)},
		{imagetest.Dir("sub", 0o755), imagetest.Symlink("sub/up", ".."), file("sub/up/pwned")},
		{imagetest.Symlink("s", "../victim"), imagetest.Hardlink("hl", "s/x")},
		{imagetest.Hardlink("hl", "../../etc/passwd")},
		{imagetest.Hardlink("hl", "/etc/passwd")},
		{file("d"), imagetest.Dir("d", 0o755), imagetest.Symlink("d", "../victim"), file("d/x")},
		{imagetest.Dir("d", 0o755), imagetest.Symlink("d/l", "."), file("d/l/l/x")},
		{imagetest.File("f", "data", 0o644), imagetest.Hardlink("g", "f"), imagetest.Whiteout("h"), imagetest.Opaque("o")},
		{imagetest.Device("dev/null", tar.TypeChar, 1, 3), imagetest.Device("fifo", tar.TypeFifo, 0, 0)},
		{imagetest.File("x", "1", 0o4755).WithXattr("user.k", "v"), imagetest.Dir("ro", 0o500), imagetest.File("ro/f", "2", 0o644)},
		{file(strings.Repeat("d/", 100) + "f")},
	}
}

// FuzzExtract: whatever the stream, Extract creates nothing outside its
// target. The target is root inside parent, next to an empty victim dir
// that seeds aim symlinks at; afterwards parent must hold just the two and
// victim nothing.
func FuzzExtract(f *testing.F) {
	for _, entries := range extractSeeds() {
		data, err := imagetest.TarEntries(entries)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root, victim := filepath.Join(parent, "root"), filepath.Join(parent, "victim")
		for _, d := range []string{root, victim} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Extract(bytes.NewReader(data), root, ExtractOptions{AsRoot: os.Geteuid() == 0})
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
		ents, _ := os.ReadDir(parent)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if len(names) != 2 || names[0] != "root" || names[1] != "victim" {
			t.Errorf("extraction created %v next to its root", names)
		}
		if ents, _ := os.ReadDir(victim); len(ents) > 0 {
			t.Errorf("extraction wrote %s into the victim dir through a link", ents[0].Name())
		}
		removeTree(parent) // read-only dirs from the layer
	})
}

// memSource is an in-memory archive for the parser targets.
type memSource map[string][]byte

func (m memSource) open(name string) (io.ReadCloser, int64, error) {
	clean, err := cleanMemberName(name)
	if err != nil {
		return nil, 0, fmt.Errorf("mem: %w", err)
	}
	data, ok := m[clean]
	if !ok {
		return nil, 0, fmt.Errorf("mem: %s: missing (%w)", clean, os.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

func (m memSource) has(name string) bool {
	clean, err := cleanMemberName(name)
	_, ok := m[clean]
	return err == nil && ok
}
func (m memSource) where() string { return "mem" }
func (m memSource) Close() error  { return nil }

// Placeholders let the fuzzer mutate each document while the digests and
// sizes linking them are filled in afterwards, so a mutated manifest is
// still reached through the index (and a mutated config through it).
const (
	phManifestDigest = "@MANIFEST_DIGEST@"
	phManifestSize   = "8888888801"
	phConfigDigest   = "@CONFIG_DIGEST@"
	phConfigSize     = "8888888802"
)

func fill(doc []byte, digestPh, sizePh string, target []byte) []byte {
	doc = bytes.ReplaceAll(doc, []byte(digestPh), []byte(digest.FromBytes(target).String()))
	return bytes.ReplaceAll(doc, []byte(sizePh), []byte(fmt.Sprint(len(target))))
}

// seedImage is a two-layer image with names, built by imagetest.
func seedImage() imagetest.Image {
	return imagetest.Image{Names: []string{"fuzz:1", "example.com/fuzz:2"}, Layers: []imagetest.Layer{
		{Entries: []imagetest.Entry{imagetest.File("a", "a", 0o644)}},
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.Whiteout("a")}},
	}}
}

// readTree loads a written layout or docker-save dir.
func readTree(f *testing.F, dir string) memSource {
	m := memSource{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	return m
}

// FuzzParseOCI parses an OCI layout whose index.json, manifest and config
// come from the fuzzer: no panic, no hang, one-line errors, and a plan
// only for a manifest whose layers are sha256 blobs of the layout.
func FuzzParseOCI(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "layout")
	if err := imagetest.WriteOCILayout(dir, seedImage()); err != nil {
		f.Fatal(err)
	}
	base := readTree(f, dir)
	built, err := imagetest.Build(seedImage())
	if err != nil {
		f.Fatal(err)
	}
	manifest, config := built.Manifest(), built.Config
	index := base["index.json"]
	mDigest, cDigest := digest.FromBytes(manifest).String(), digest.FromBytes(config).String()
	if !bytes.Contains(index, []byte(mDigest)) || !bytes.Contains(manifest, []byte(cDigest)) {
		f.Fatal("seed: the index or manifest does not name its blob")
	}
	index = bytes.ReplaceAll(index, []byte(mDigest), []byte(phManifestDigest))
	index = bytes.Replace(index, []byte(fmt.Sprintf(`"size":%d`, len(manifest))), []byte(`"size":`+phManifestSize), 1)
	manifest = bytes.ReplaceAll(manifest, []byte(cDigest), []byte(phConfigDigest))
	manifest = bytes.Replace(manifest, []byte(fmt.Sprintf(`"size":%d`, len(config))), []byte(`"size":`+phConfigSize), 1)
	f.Add(index, manifest, config)
	f.Add([]byte(`{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"`+phManifestDigest+`","size":`+phManifestSize+`}]}`),
		[]byte(`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:`+strings.Repeat("0", 64)+`","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`), config)
	f.Add([]byte(`{"manifests":[{"digest":"sha256:../../etc/passwd","size":1}]}`), manifest, config)
	ociSource := func(index, manifest, config []byte) memSource {
		m := fill(manifest, phConfigDigest, phConfigSize, config)
		src := memSource{}
		for k, v := range base {
			src[k] = v // oci-layout and the blobs (the seed's manifest and config too: harmless)
		}
		src["index.json"] = fill(index, phManifestDigest, phManifestSize, m)
		src["blobs/sha256/"+digest.FromBytes(m).Encoded()] = m
		src["blobs/sha256/"+digest.FromBytes(config).Encoded()] = config
		return src
	}
	if plans, err := parseSource(ociSource(index, manifest, config), "seed"); err != nil || len(plans) == 0 || len(plans[0].layers) != 2 {
		f.Fatalf("the seed layout does not parse: %v", err)
	}
	f.Fuzz(func(t *testing.T, index, manifest, config []byte) {
		checkPlans(t, ociSource(index, manifest, config))
	})
}

// FuzzParseDockerSave parses a docker-save archive whose manifest.json
// and config come from the fuzzer.
func FuzzParseDockerSave(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "docker")
	if err := imagetest.WriteDockerDir(dir, seedImage()); err != nil {
		f.Fatal(err)
	}
	base := readTree(f, dir)
	built, err := imagetest.Build(seedImage())
	if err != nil {
		f.Fatal(err)
	}
	cName := digest.FromBytes(built.Config).Encoded() + ".json"
	mj := bytes.ReplaceAll(base["manifest.json"], []byte(cName), []byte(phConfigDigest))
	f.Add(mj, built.Config)
	f.Add([]byte(`[{"Config":"../x.json","Layers":["/etc/passwd"]}]`), built.Config)
	f.Add([]byte(`[{"Config":"`+phConfigDigest+`","RepoTags":["a b"],"Layers":["x/../../y"]}]`), built.Config)
	dockerSource := func(manifest, config []byte) memSource {
		src := memSource{}
		for k, v := range base {
			src[k] = v
		}
		delete(src, cName)
		name := digest.FromBytes(config).Encoded() + ".json"
		src["manifest.json"] = bytes.ReplaceAll(manifest, []byte(phConfigDigest), []byte(name))
		src[name] = config
		return src
	}
	if plans, err := parseSource(dockerSource(mj, built.Config), "seed"); err != nil || len(plans) != 1 || len(plans[0].layers) != 2 {
		f.Fatalf("the seed archive does not parse: %v", err)
	}
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		checkPlans(t, dockerSource(manifest, config))
	})
}

// checkPlans parses src; a plan must only name members in the archive
// by clean relative names.
func checkPlans(t *testing.T, src memSource) {
	plans, err := parseSource(src, "fuzz.tar")
	if err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
		return
	}
	for _, p := range plans {
		for _, l := range p.layers {
			if strings.HasPrefix(l.name, "/") || strings.Contains("/"+l.name+"/", "/../") {
				t.Errorf("plan layer %q leaves the archive", l.name)
			}
		}
		for _, n := range p.names {
			if _, err := NormalizeName(n); err != nil {
				t.Errorf("plan name %q: %v", n, err)
			}
		}
	}
}
