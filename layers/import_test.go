package layers_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
	"golang.org/x/sys/unix"
)

var longName = strings.Repeat("n", 200) + "/" + strings.Repeat("m", 200)

// richImage has three layers (plain, gzip, zstd) using every entry kind.
func richImage() imagetest.Image {
	sparse := make([]byte, 3<<20)
	copy(sparse, "head")
	copy(sparse[len(sparse)-4:], "tail")
	mtime := time.Date(2021, 8, 12, 10, 0, 0, 0, time.UTC)
	base := imagetest.Layer{Entries: []imagetest.Entry{
		imagetest.Raw(tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "git"}, Format: tar.FormatPAX}, nil),
		imagetest.Dir("etc", 0o755),
		imagetest.File("etc/hostname", "base\n", 0o644).WithMtime(mtime),
		imagetest.File("etc/shadow", "secret\n", 0o640).WithOwner(0, 42),
		imagetest.Dir("a/b/c", 0o755),
		imagetest.File("a/b/c/foo", "foo\n", 0o644),
		imagetest.File("a/b/c/bar", "bar\n", 0o644),
		imagetest.File("a/baz", "baz\n", 0o644),
		imagetest.Dir("bin", 0o755),
		imagetest.File("bin/su", "#!/bin/sh\n", 0o4755),
		imagetest.File("bin/ping", "ping\n", 0o755).WithXattr("security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
		imagetest.File("bin/tagged", "x\n", 0o644).WithXattr("user.note", "hello"),
		imagetest.Symlink("bin/sh", "su"),
		imagetest.Symlink("bin/abs", "/etc/hostname"),
		imagetest.Hardlink("bin/su-hardlink", "bin/su"),
		imagetest.File(longName, "long\n", 0o644),
		imagetest.BigFile("var/sparse.img", sparse, 0o644),
		imagetest.Device("dev/null", tar.TypeChar, 1, 3),
		imagetest.Device("run/fifo", tar.TypeFifo, 0, 0),
	}}
	upper := imagetest.Layer{Compression: imagetest.Gzip, Entries: []imagetest.Entry{
		imagetest.Dir("a/b/c", 0o755),
		imagetest.Whiteout("a/b/c/foo"),
		imagetest.File("etc/hostname", "upper\n", 0o644),
		imagetest.Dir("a", 0o755),
		imagetest.Opaque("a"),
		imagetest.File("a/new", "new\n", 0o600),
	}}
	top := imagetest.Layer{Compression: imagetest.Zstd, Entries: []imagetest.Entry{
		imagetest.Dir("opt/app", 0o755),
		imagetest.File("opt/app/run", "run\n", 0o755),
		imagetest.Whiteout("bin/tagged"),
	}}
	return imagetest.Image{Names: []string{"rich:v1"}, Layers: []imagetest.Layer{base, upper, top}, Cmd: []string{"/opt/app/run"}}
}

func TestImportDockerArchive(t *testing.T) {
	src := filepath.Join(t.TempDir(), "rich.tar")
	if err := imagetest.WriteDockerArchive(src, richImage()); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	imgs := mustImport(t, s, src)
	if len(imgs) != 1 || len(imgs[0].Names) != 1 || imgs[0].Names[0] != "rich:v1" {
		t.Fatalf("imported %+v", imgs)
	}
	img, err := s.Image("rich:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Config.Config.Cmd; len(got) != 1 || got[0] != "/opt/app/run" {
		t.Errorf("config Cmd = %v", got)
	}
	wantTypes := []string{"application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"}
	for i, l := range img.Layers {
		if l.MediaType != wantTypes[i] {
			t.Errorf("layer %d media type %s, want %s", i, l.MediaType, wantTypes[i])
		}
	}
	dirs := s.LayerDirs(img)
	if len(dirs) != 3 || dirs[0] != s.LayerDir(img.Layers[2].ChainID) {
		t.Fatalf("LayerDirs = %v (want top first)", dirs)
	}
	checkBaseLayer(t, dirs[2])
	// Whiteouts stay as files for unionfsd to interpret.
	for _, p := range []string{"a/b/c/.wh.foo", "a/.wh..wh..opq"} {
		if st, err := os.Lstat(filepath.Join(dirs[1], p)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("whiteout %s not kept: %v", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dirs[0], "bin/.wh.tagged")); err != nil {
		t.Errorf("zstd layer whiteout: %v", err)
	}
}

// checkBaseLayer checks the metadata the base layer of richImage must keep.
func checkBaseLayer(t *testing.T, dir string) {
	t.Helper()
	var st unix.Stat_t
	must := func(p string) *unix.Stat_t {
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return &st
	}
	if m := must("etc/hostname").Mtim.Sec; m != time.Date(2021, 8, 12, 10, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("mtime not kept: %d", m)
	}
	if got, _ := os.Readlink(filepath.Join(dir, "bin/abs")); got != "/etc/hostname" {
		t.Errorf("absolute symlink = %q", got)
	}
	su := *must("bin/su")
	if link := must("bin/su-hardlink"); link.Ino != su.Ino {
		t.Errorf("hardlink not kept: inodes %d and %d", link.Ino, su.Ino)
	}
	if data, err := os.ReadFile(filepath.Join(dir, longName)); err != nil || string(data) != "long\n" {
		t.Errorf("long name: %q %v", data, err)
	}
	sp := must("var/sparse.img")
	if sp.Size != 3<<20 || sp.Blocks*512 >= 1<<20 {
		t.Errorf("sparse file: size %d, allocated %d bytes (want a hole)", sp.Size, sp.Blocks*512)
	}
	if xattrString(filepath.Join(dir, "bin/tagged")) != "user.note=hello" {
		t.Errorf("user xattr not kept: %q", xattrString(filepath.Join(dir, "bin/tagged")))
	}
	if must("run/fifo").Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo not made")
	}
	if !isRoot() {
		if must("bin/su").Mode&unix.S_ISUID != 0 {
			t.Errorf("setuid kept rootless")
		}
		return
	}
	if mode := must("bin/su").Mode; mode&0o7777 != 0o4755 {
		t.Errorf("setuid mode = %o", mode&0o7777)
	}
	if g := must("etc/shadow").Gid; g != 42 {
		t.Errorf("gid = %d", g)
	}
	if dev := must("dev/null"); dev.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(dev.Rdev) != 1 || unix.Minor(dev.Rdev) != 3 {
		t.Errorf("device node: mode %o rdev %d", dev.Mode, dev.Rdev)
	}
	if !strings.HasPrefix(xattrString(filepath.Join(dir, "bin/ping")), "security.capability=") {
		t.Errorf("capability not kept: %q", xattrString(filepath.Join(dir, "bin/ping")))
	}
}

func TestImportOCILayoutDirAndArchive(t *testing.T) {
	img := richImage()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := imagetest.WriteOCILayout(dir, img); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "rich.oci.tar")
	if err := imagetest.WriteOCIArchive(archive, img); err != nil {
		t.Fatal(err)
	}
	built, err := imagetest.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{dir, archive} {
		s := openStore(t)
		imgs := mustImport(t, s, src)
		if len(imgs) != 1 || imgs[0].ID.String() != built.ConfigDigest() {
			t.Fatalf("%s: imported %v, want ID %s", src, imgs, built.ConfigDigest())
		}
		if imgs[0].ManifestDigest.String() != imagetest.Digest(built.Manifest()) {
			t.Errorf("manifest not stored verbatim")
		}
		checkBaseLayer(t, s.LayerDirs(imgs[0])[2])
	}
}

func TestImportMultiImageSharesLayers(t *testing.T) {
	shared := imagetest.Layer{Entries: []imagetest.Entry{imagetest.File("shared", "s", 0o644)}}
	a := imagetest.Image{Names: []string{"a:1"}, Layers: []imagetest.Layer{shared, {Entries: []imagetest.Entry{imagetest.File("a", "a", 0o644)}}}}
	b := imagetest.Image{Names: []string{"b:1", "b:latest"}, Layers: []imagetest.Layer{shared, {Entries: []imagetest.Entry{imagetest.File("b", "b", 0o644)}}}}
	src := filepath.Join(t.TempDir(), "multi.tar")
	if err := imagetest.WriteDockerArchive(src, a, b); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	imgs := mustImport(t, s, src)
	if len(imgs) != 2 {
		t.Fatalf("imported %d images", len(imgs))
	}
	if got := listDir(t, filepath.Join(s.Root(), "layers")); len(got) != 3 {
		t.Errorf("layer dirs %v, want 3 (the shared base once)", got)
	}
	if _, err := s.Image("b"); err != nil {
		t.Errorf("b (latest): %v", err)
	}
	if _, err := s.Import(src, layers.ImportOptions{Name: "x:y"}); err == nil || !strings.Contains(err.Error(), "one image") {
		t.Errorf("--name on a multi-image archive: %v", err)
	}
	// Re-import is a no-op on disk and keeps the names.
	mustImport(t, s, src)
	all, err := s.Images()
	if err != nil || len(all) != 2 {
		t.Fatalf("images after re-import: %d %v", len(all), err)
	}
}

func TestImportNameOverrideAndCompressedArchive(t *testing.T) {
	img := imagetest.Image{Names: []string{"orig:1"}, Layers: []imagetest.Layer{{Entries: []imagetest.Entry{imagetest.File("f", "x", 0o644)}}}}
	dir := t.TempDir()
	plain := filepath.Join(dir, "img.tar")
	if err := imagetest.WriteDockerArchive(plain, img); err != nil {
		t.Fatal(err)
	}
	// "docker save | gzip": the whole archive compressed.
	data, _ := os.ReadFile(plain)
	gz := filepath.Join(dir, "img.tar.gz")
	var buf bytes.Buffer
	zw := newGzip(&buf)
	zw.Write(data)
	zw.Close()
	os.WriteFile(gz, buf.Bytes(), 0o644)
	s := openStore(t)
	imgs, err := s.Import(gz, layers.ImportOptions{Name: "renamed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs[0].Names) != 1 || imgs[0].Names[0] != "renamed:latest" {
		t.Errorf("names = %v", imgs[0].Names)
	}
}

func TestBusyboxImage(t *testing.T) {
	p := testsupport.BusyboxImage(t)
	s := openStore(t)
	imgs := mustImport(t, s, p)
	dir := s.LayerDirs(imgs[0])[0]
	st, err := os.Stat(filepath.Join(dir, "bin/sh"))
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("bin/sh: %v %v", st, err)
	}
	if imgs[0].Names[0] != "busybox:latest" {
		t.Errorf("names %v", imgs[0].Names)
	}
}

func TestImportDocker25Format(t *testing.T) {
	src := filepath.Join(t.TempDir(), "docker25.tar")
	img := richImage()
	if err := imagetest.WriteDockerOCIArchive(src, img); err != nil {
		t.Fatal(err)
	}
	built, _ := imagetest.Build(img)
	s := openStore(t)
	imgs := mustImport(t, s, src)
	if imgs[0].ID.String() != built.ConfigDigest() || imgs[0].Names[0] != "rich:v1" {
		t.Fatalf("imported %s %v", imgs[0].ID, imgs[0].Names)
	}
	for i, l := range imgs[0].Layers {
		if l.Digest.String() != built.Layers[i].Digest {
			t.Errorf("layer %d blob %s, want %s", i, l.Digest, built.Layers[i].Digest)
		}
	}
	checkBaseLayer(t, s.LayerDirs(imgs[0])[2])
}

func TestImportNotATar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "junk.bin")
	os.WriteFile(src, bytes.Repeat([]byte("junk"), 1000), 0o644)
	s := openStore(t)
	_, err := s.Import(src, layers.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "junk.bin: not a tar archive") {
		t.Fatalf("junk: %v", err)
	}
}

// TestLaterEntriesWin: a tar may list a name twice; the later entry wins,
// even a file over a non-empty directory.
func TestLaterEntriesWin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	img := imagetest.Image{Names: []string{"dup:1"}, Layers: []imagetest.Layer{{Entries: []imagetest.Entry{
		imagetest.Dir("x", 0o755), imagetest.File("x/inner", "i", 0o644), imagetest.Symlink("x/link", "/etc"),
		imagetest.File("x", "now a file", 0o600),
		imagetest.File("y", "first", 0o644), imagetest.File("y", "second", 0o644),
	}}}}
	if err := imagetest.WriteOCILayout(dir, img); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	l := s.LayerDirs(mustImport(t, s, dir)[0])[0]
	if data, err := os.ReadFile(filepath.Join(l, "x")); err != nil || string(data) != "now a file" {
		t.Errorf("x = %q %v", data, err)
	}
	if data, _ := os.ReadFile(filepath.Join(l, "y")); string(data) != "second" {
		t.Errorf("y = %q", data)
	}
}
