package layers_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestImportReaderPipe imports archives read from a pipe (no seeking):
// plain and gzip-compressed, and a truncated one that fails cleanly.
func TestImportReaderPipe(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "img.tar")
	img := imagetest.Image{Names: []string{"piped:1"}, Layers: []imagetest.Layer{
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{imagetest.File("hello", "hi", 0o644)}}}}
	if err := imagetest.WriteDockerArchive(src, img); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	for name, archive := range map[string][]byte{"plain": data, "gzip": gz.Bytes()} {
		s := openStore(t)
		imgs, err := s.ImportReader(pipe(t, archive), "stdin", layers.ImportOptions{})
		if err != nil || len(imgs) != 1 || imgs[0].Names[0] != "piped:1" {
			t.Errorf("%s archive from a pipe: %v %v", name, imgs, err)
		}
	}
	s := openStore(t)
	_, err = s.ImportReader(pipe(t, data[:len(data)/2]), "stdin", layers.ImportOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "import stdin: ") {
		t.Errorf("truncated archive from a pipe: %v", err)
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("a failed import left %d images", len(imgs))
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(ents) != 0 {
		t.Errorf("a failed import left staging: %v", ents)
	}
}

// pipe returns the read end of a pipe that gets data.
func pipe(t *testing.T, data []byte) io.Reader {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.Write(data); w.Close() }()
	t.Cleanup(func() { r.Close() })
	return r
}

// TestTagAndRepoDigest: tag moves a name from the image that had it; a
// recorded REPO@DIGEST finds its image and nothing else does.
func TestTagAndRepoDigest(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t)
	var ids []string
	for _, content := range []string{"a", "b"} {
		p := filepath.Join(dir, content+".tar")
		if err := imagetest.WriteDockerArchive(p, imagetest.Image{Names: []string{"img:" + content}, Layers: []imagetest.Layer{
			{Entries: []imagetest.Entry{imagetest.File("f", content, 0o644)}}}}); err != nil {
			t.Fatal(err)
		}
		imgs := mustImport(t, s, p)
		ids = append(ids, imgs[0].ID.String())
	}
	if _, err := s.Tag("img:a", "shared:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag("img:b", "shared:1"); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Image("img:a")
	b, _ := s.Image("shared:1")
	if b.ID.String() != ids[1] || len(a.Names) != 1 {
		t.Errorf("after tagging b as shared:1: shared:1 is %s, a has names %v", b.ID, a.Names)
	}
	if _, err := s.Tag("nope", "x:1"); !errors.Is(err, layers.ErrImageNotFound) {
		t.Errorf("tag of a missing image: %v", err)
	}
	rd := "example.com/img@sha256:" + strings.Repeat("ab", 32)
	if err := s.AddRepoDigest(a.ID, rd); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Image(rd); err != nil || got.ID != a.ID {
		t.Errorf("Image(%s) = %v, %v; want %s", rd, got, err, a.ID)
	}
	if _, err := s.Image("example.com/other@sha256:" + strings.Repeat("ab", 32)); !errors.Is(err, layers.ErrImageNotFound) {
		t.Errorf("another repository with the same digest: %v", err)
	}
}
