package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

func openStore(t *testing.T) *layers.Store {
	t.Helper()
	s, err := layers.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pull fetches ref into s and imports it, as crun-lite pull does.
func pull(t *testing.T, s *layers.Store, ref string) (*layers.Image, error) {
	t.Helper()
	named, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	unlock, err := s.LockShared()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	f, err := Fetch(context.Background(), s, named, Options{})
	if err != nil {
		return nil, err
	}
	defer layers.RemoveTempDir(f.Dir)
	imgs, err := s.Import(f.Dir, layers.ImportOptions{Where: ref})
	if err != nil {
		return nil, err
	}
	if len(imgs) != 1 || imgs[0].ID != f.ID {
		t.Fatalf("import of the pulled layout: %v, want one image %s", imgs, f.ID)
	}
	if err := s.AddRepoDigest(f.ID, f.RepoDigest); err != nil {
		t.Fatal(err)
	}
	return s.Image(f.ID.String())
}

// pushRaw puts the blobs and manifest of b into the registry as they are,
// tagged tag (or by digest only when tag is ""), and returns the manifest
// and its digest. It lets a test serve what no honest tool would push.
func pushRaw(t *testing.T, repo string, b *imagetest.BuiltImage, config []byte, tag string) ([]byte, string) {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	if config == nil {
		config = b.Config
	}
	for _, l := range b.Layers {
		if err := remote.WriteLayer(r, static.NewLayer(l.Blob, types.MediaType(l.MediaType))); err != nil {
			t.Fatalf("push layer: %v", err)
		}
	}
	if err := remote.WriteLayer(r, static.NewLayer(config, types.OCIConfigJSON)); err != nil {
		t.Fatalf("push config: %v", err)
	}
	manifest := b.Manifest()
	if !bytes.Equal(config, b.Config) {
		manifest = bytes.Replace(manifest, []byte(imagetest.Digest(b.Config)), []byte(imagetest.Digest(config)), 1)
	}
	d := imagetest.Digest(manifest)
	putManifest(t, repo, d, manifest, types.OCIManifestSchema1)
	if tag != "" {
		putManifest(t, repo, tag, manifest, types.OCIManifestSchema1)
	}
	return manifest, d
}

func putManifest(t *testing.T, repo, tagOrDigest string, data []byte, mt types.MediaType) {
	t.Helper()
	sep := ":"
	if strings.HasPrefix(tagOrDigest, "sha256:") {
		sep = "@"
	}
	ref, err := name.ParseReference(repo + sep + tagOrDigest)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawManifest{data, mt}); err != nil {
		t.Fatalf("put manifest %s: %v", ref, err)
	}
}

type rawManifest struct {
	data []byte
	mt   types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.data, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

func smallImage(t *testing.T, content string) *imagetest.BuiltImage {
	t.Helper()
	b, err := imagetest.Build(imagetest.Image{Cmd: []string{"/bin/app"}, Layers: []imagetest.Layer{
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.Dir("etc", 0o755), imagetest.File("etc/which", content, 0o644)}},
		{Entries: []imagetest.Entry{imagetest.File("etc/second", content, 0o644)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readLayerFile(t *testing.T, s *layers.Store, img *layers.Image, layer int, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.LayerDir(img.Layers[layer].ChainID), p))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestPushPullRoundTrip pushes a stored image to a local registry and pulls
// it by tag and by digest into fresh stores: the same image ID, manifest
// digest and layer contents come back, and pulled names and digests find it.
func TestPushPullRoundTrip(t *testing.T) {
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	src := openStore(t)
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := imagetest.WriteDockerArchive(archive, imagetest.Image{Names: []string{"demo:1"}, Cmd: []string{"/bin/app"}, Layers: []imagetest.Layer{
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.Dir("bin", 0o755), imagetest.File("bin/app", "app", 0o755)}},
		{Compression: imagetest.Zstd, Entries: []imagetest.Entry{imagetest.File("bin/conf", "conf", 0o644)}},
	}}); err != nil {
		t.Fatal(err)
	}
	imgs, err := src.Import(archive, layers.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := imgs[0]
	dest, err := ParseReference(reg + "/team/demo:1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Push(context.Background(), src, "demo:1", dest, Options{})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if d != want.ManifestDigest {
		t.Errorf("push returned %s, the stored manifest is %s", d, want.ManifestDigest)
	}

	byTag := openStore(t)
	got, err := pull(t, byTag, reg+"/team/demo:1")
	if err != nil {
		t.Fatalf("pull by tag: %v", err)
	}
	if got.ID != want.ID || got.ManifestDigest != want.ManifestDigest || len(got.Layers) != 2 {
		t.Fatalf("pulled %s (manifest %s, %d layers), pushed %s (manifest %s)", got.ID, got.ManifestDigest, len(got.Layers), want.ID, want.ManifestDigest)
	}
	if c := readLayerFile(t, byTag, got, 0, "bin/app"); c != "app" {
		t.Errorf("bin/app = %q", c)
	}
	if _, err := byTag.Image(reg + "/team/demo:1"); err != nil {
		t.Errorf("the pulled name does not find the image: %v", err)
	}

	byDigest := openStore(t)
	ref := reg + "/team/demo@" + d.String()
	got, err = pull(t, byDigest, ref)
	if err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	if got.ID != want.ID || len(got.Names) != 0 {
		t.Errorf("pull by digest: %s names %v, want %s without names", got.ID, got.Names, want.ID)
	}
	if img, err := byDigest.Image(ref); err != nil || img.ID != want.ID {
		t.Errorf("REPO@DIGEST does not find the pulled image: %v", err)
	}

	// Layers the store has are not downloaded again: with the layer blobs
	// deleted from the registry, a pull into the store that has them still
	// works, and one into an empty store fails.
	for _, l := range want.Layers {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+reg+"/v2/team/demo/blobs/"+l.Digest.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delete blob %s from the registry: %v %v", l.Digest, err, resp)
		}
		resp.Body.Close()
	}
	if _, err := pull(t, openStore(t), reg+"/team/demo:1"); err == nil || !strings.Contains(err.Error(), "lost a blob") {
		t.Fatalf("pull into an empty store without the layer blobs in the registry: %v", err)
	}
	got2, err := pull(t, byTag, reg+"/team/demo:1")
	if err != nil || got2.ID != want.ID {
		t.Fatalf("second pull: %v", err)
	}
}

// TestPullIndexPicksPlatform serves a multi-arch index whose entries for
// another architecture come first: the pull must take this machine's.
func TestPullIndexPicksPlatform(t *testing.T) {
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	repo := reg + "/multi"
	other := "s390x"
	if runtime.GOARCH == other {
		other = "arm64"
	}
	foreign := smallImage(t, "foreign")
	foreignCfg := withArch(t, foreign.Config, other)
	fm, fd := pushRaw(t, repo, foreign, foreignCfg, "")
	native := smallImage(t, "native")
	nm, nd := pushRaw(t, repo, native, nil, "")
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}},
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}]}`,
		fd, len(fm), other, nd, len(nm), runtime.GOARCH)
	putManifest(t, repo, "both", []byte(index), types.OCIImageIndex)

	s := openStore(t)
	img, err := pull(t, s, repo+":both")
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if img.ID.String() != native.ConfigDigest() {
		t.Fatalf("pulled %s, want the %s image %s (the %s one is %s)", img.ID, runtime.GOARCH, native.ConfigDigest(), other, imagetest.Digest(foreignCfg))
	}
	if c := readLayerFile(t, s, img, 0, "etc/which"); c != "native" {
		t.Errorf("etc/which = %q, want native", c)
	}
	// The index digest, as docker records it, finds the image too.
	if _, err := s.Image(repo + "@" + imagetest.Digest([]byte(index))); err != nil {
		t.Errorf("the index digest does not find the image: %v", err)
	}

	// An index without this platform is an error naming it.
	only := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}]}`, fd, len(fm), other)
	putManifest(t, repo, "foreign", []byte(only), types.OCIImageIndex)
	_, err = pull(t, openStore(t), repo+":foreign")
	if err == nil || !strings.Contains(err.Error(), runtime.GOARCH) {
		t.Errorf("pull of an index without linux/%s: %v", runtime.GOARCH, err)
	}
}

func withArch(t *testing.T, config []byte, arch string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(config, &m); err != nil {
		t.Fatal(err)
	}
	m["architecture"] = arch
	out, _ := json.Marshal(m)
	return out
}

// TestPullHostileImage serves images whose blobs are intact (the registry
// checks those) but whose config lies about the layers: the pull fails
// with the cause and the store stays empty.
func TestPullHostileImage(t *testing.T) {
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	b := smallImage(t, "x")
	var cfg map[string]any
	json.Unmarshal(b.Config, &cfg)
	cfg["rootfs"].(map[string]any)["diff_ids"] = []string{b.Layers[1].DiffID, b.Layers[0].DiffID}
	swapped, _ := json.Marshal(cfg)
	pushRaw(t, reg+"/hostile", b, swapped, "swapped")

	escape := imagetest.Image{Layers: []imagetest.Layer{{Entries: []imagetest.Entry{imagetest.File("../../escaped", "x", 0o644)}}}}
	eb, err := imagetest.Build(escape)
	if err != nil {
		t.Fatal(err)
	}
	pushRaw(t, reg+"/hostile", eb, nil, "escape")

	for _, tc := range []struct{ tag, want string }{{"swapped", "hostile:swapped: manifest sha256:"}, {"swapped", "diff_id mismatch"}, {"escape", "escaped"}} {
		s := openStore(t)
		_, err := pull(t, s, reg+"/hostile:"+tc.tag)
		t.Logf("pull %s: %v", tc.tag, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pull %s: %v, want an error with %q", tc.tag, err, tc.want)
		}
		if imgs, _ := s.Images(); len(imgs) != 0 {
			t.Errorf("pull %s left %d images in the store", tc.tag, len(imgs))
		}
		if ents, _ := os.ReadDir(filepath.Join(s.Root(), "layers")); len(ents) != 0 {
			t.Errorf("pull %s left layers: %v", tc.tag, ents)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.Root()), "escaped")); err == nil {
			t.Errorf("pull %s wrote outside the store", tc.tag)
		}
	}
}

// TestPullErrors: an unknown repository or tag is ErrImageNotFound, an
// unreachable registry says so, a bad reference is ErrBadReference; each
// in one line.
func TestPullErrors(t *testing.T) {
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	pushRaw(t, reg+"/there", smallImage(t, "x"), nil, "1")
	closed := testsupport.ClosedLoopbackAddr(t)
	for _, tc := range []struct {
		ref  string
		is   error
		want string
	}{
		{reg + "/missing:1", layers.ErrImageNotFound, "missing"},
		{reg + "/there:2", layers.ErrImageNotFound, "there:2"},
		{reg + "/there@sha256:" + strings.Repeat("0", 64), layers.ErrImageNotFound, "there@sha256"},
		{closed + "/x:1", nil, "registry unreachable"},
		{"team/UPPER", ErrBadReference, "must be lowercase"},
		{"a b", ErrBadReference, `"a b"`},
		{"x@sha256:12", ErrBadReference, "invalid reference format"},
	} {
		_, err := pull(t, openStore(t), tc.ref)
		t.Logf("pull %s: %v", tc.ref, err)
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("pull %s: %v; want one line with %q (is %v)", tc.ref, err, tc.want, tc.is)
		}
	}
}

func TestParseReference(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                       "docker.io/library/busybox:latest",
		"busybox:1.36":                  "docker.io/library/busybox:1.36",
		"docker://alpine":               "docker.io/library/alpine:latest",
		"user/app":                      "docker.io/user/app:latest",
		"localhost:5000/app":            "localhost:5000/app:latest",
		"127.0.0.1:5000/a/b:v1":         "127.0.0.1:5000/a/b:v1",
		"quay.io/x/y@sha256:" + zeros(): "quay.io/x/y@sha256:" + zeros(),
	} {
		got, err := ParseReference(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseReference(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "a:b:c", "x@sha256:abc", "-x", "a//b"} {
		if _, err := ParseReference(bad); !errors.Is(err, ErrBadReference) {
			t.Errorf("ParseReference(%q): %v, want ErrBadReference", bad, err)
		}
	}
}

func zeros() string { return strings.Repeat("0", 64) }

// countingProgress records the bytes each bar got.
type countingProgress struct {
	mu   sync.Mutex
	bars map[string]*countingBar
}

type countingBar struct {
	p      *countingProgress
	total  int64
	n      int64
	closed bool
}

func (c *countingProgress) Start(label string, total int64) io.WriteCloser {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bars == nil {
		c.bars = map[string]*countingBar{}
	}
	b := &countingBar{p: c, total: total}
	c.bars[label] = b
	return b
}

func (b *countingBar) Write(p []byte) (int, error) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.n += int64(len(p))
	return len(p), nil
}

func (b *countingBar) Close() error {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.closed = true
	return nil
}

// TestProgressAndConcurrentPulls: a pull shows one bar per downloaded layer
// that ends at the layer's size, a push one bar for its bytes; two pulls
// of one image into one store at once both succeed with one image stored.
func TestProgressAndConcurrentPulls(t *testing.T) {
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	b := smallImage(t, "p")
	pushRaw(t, reg+"/prog", b, nil, "1")
	named, _ := ParseReference(reg + "/prog:1")

	s := openStore(t)
	var pp countingProgress
	unlock, _ := s.LockShared()
	f, err := Fetch(context.Background(), s, named, Options{Progress: &pp})
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	layers.RemoveTempDir(f.Dir)
	if len(pp.bars) != len(b.Layers) {
		t.Errorf("%d bars for %d layers", len(pp.bars), len(b.Layers))
	}
	for _, l := range b.Layers {
		bar := pp.bars["pull "+strings.TrimPrefix(l.Digest, "sha256:")[:12]]
		if bar == nil || bar.n != int64(len(l.Blob)) || bar.total != int64(len(l.Blob)) || !bar.closed {
			t.Errorf("bar of layer %s: %+v, want %d bytes and closed", l.Digest, bar, len(l.Blob))
		}
	}

	if _, err := pull(t, s, reg+"/prog:1"); err != nil {
		t.Fatal(err)
	}
	var push countingProgress
	dest, _ := ParseReference(reg + "/prog-copy:1")
	if _, err := Push(context.Background(), s, reg+"/prog:1", dest, Options{Progress: &push}); err != nil {
		t.Fatal(err)
	}
	if bar := push.bars["push "+dest.String()]; bar == nil || bar.n != bar.total || bar.n == 0 || !bar.closed {
		t.Errorf("push bar: %+v", bar)
	}

	shared := openStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pull(t, shared, reg+"/prog:1")
		}()
	}
	wg.Wait()
	imgs, _ := shared.Images()
	if errs[0] != nil || errs[1] != nil || len(imgs) != 1 {
		t.Errorf("two pulls at once: %v, %d images", errs, len(imgs))
	}
}
