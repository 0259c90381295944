package layers_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
	"github.com/unionfsd/unionfsd/whiteout"
	"golang.org/x/sys/unix"
)

// baseImage is a small two-layer image for commit tests.
func baseImage() imagetest.Image {
	return imagetest.Image{Names: []string{"base:1"}, Layers: []imagetest.Layer{
		{Entries: []imagetest.Entry{
			imagetest.Dir("etc", 0o755),
			imagetest.File("etc/motd", "old motd\n", 0o644),
			imagetest.File("etc/delete-me", "bye\n", 0o644),
			imagetest.Dir("data/sub", 0o755),
			imagetest.File("data/sub/old", "old\n", 0o644),
			imagetest.File("data/keep", "keep\n", 0o644),
			imagetest.Symlink("etc/link", "motd"),
		}},
		{Compression: imagetest.Gzip, Entries: []imagetest.Entry{
			imagetest.File("etc/added-in-2", "two\n", 0o644),
		}},
	}}
}

// importBase imports baseImage into s.
func importBase(t *testing.T, s *layers.Store) *layers.Image {
	t.Helper()
	src := filepath.Join(t.TempDir(), "base.tar")
	if err := imagetest.WriteDockerArchive(src, baseImage()); err != nil {
		t.Fatal(err)
	}
	return mustImport(t, s, src)[0]
}

// commitAndReimport commits upper on base, exports the result, imports it
// into a fresh store and returns the merged view of the new image.
func commitAndReimport(t *testing.T, s *layers.Store, upper string) (merged map[string]node, topLayer string) {
	t.Helper()
	base, err := s.Image("base:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Commit(upper, "base:1", "committed:1", layers.CommitOptions{Comment: "test commit"})
	if err != nil {
		t.Fatal(err)
	}
	n := len(base.Layers) + 1
	if len(img.Layers) != n || len(img.Config.RootFS.DiffIDs) != n || len(img.Config.History) != n {
		t.Fatalf("committed image: %d layers, %d diff_ids, %d history", len(img.Layers), len(img.Config.RootFS.DiffIDs), len(img.Config.History))
	}
	if h := img.Config.History[n-1]; h.Comment != "test commit" || h.CreatedBy != "crun-lite commit" {
		t.Errorf("history entry %+v", h)
	}
	if img.Layers[n-1].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("new layer media type %s", img.Layers[2].MediaType)
	}
	out := filepath.Join(t.TempDir(), "committed.tar")
	if err := s.Export("committed:1", out, layers.FormatOCIArchive, layers.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := openStore(t)
	again := mustImport(t, fresh, out)[0]
	if again.ID != img.ID {
		t.Errorf("re-imported ID %s, committed %s", again.ID, img.ID)
	}
	top := fresh.LayerDirs(again)[0]
	for _, n := range listDir(t, top) {
		if whiteout.IsReserved(n) && !whiteout.IsOpaqueMarker(n) {
			t.Errorf("reserved name %s exported", n)
		}
	}
	return mergeLayers(t, fresh.LayerDirs(again)), top
}

// TestCommitOCIUpper commits an upper dir in unionfsd's format, with its
// workdir and internal xattrs, on plain directories.
func TestCommitOCIUpper(t *testing.T) {
	s := openStore(t)
	base := importBase(t, s)
	upper := t.TempDir()
	write := func(p, content string) {
		os.MkdirAll(filepath.Dir(filepath.Join(upper, p)), 0o755)
		if err := os.WriteFile(filepath.Join(upper, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/motd", "new motd\n")          // modify
	write("etc/new", "brand new\n")          // add
	write("etc/.wh.delete-me", "")           // delete a lower file
	write("data/.wh..wh..opq", "")           // replace a dir...
	write("data/fresh", "fresh\n")           // ...with new content
	write(".wh..wh.unionfsd.work/tmp1", "x") // our workdir: never exported
	os.Link(filepath.Join(upper, "etc/new"), filepath.Join(upper, "etc/new-hardlink"))
	if err := unix.Lsetxattr(filepath.Join(upper, "etc/new"), "user.unionfsd.origin", []byte("x"), 0); err != nil {
		t.Skipf("no user xattrs on %s: %v", upper, err)
	}
	unix.Lsetxattr(filepath.Join(upper, "etc/new"), "user.keep", []byte("yes"), 0)

	want := mergeLayers(t, append([]string{upper}, s.LayerDirs(base)...))
	got, _ := commitAndReimport(t, s, upper)
	diffTrees(t, want, got)
	if _, ok := got["data/sub/old"]; ok {
		t.Errorf("opaque dir did not hide the lower content")
	}
	if got["etc/new"].xattrs != "user.keep=yes" {
		t.Errorf("xattrs of etc/new = %q (internal ones must be stripped, others kept)", got["etc/new"].xattrs)
	}
}

// TestCommitKernelOverlayUpper makes changes through a real kernel overlay
// mount, whose upper holds 0/0 char devices and opaque xattrs, commits the
// upper and checks the re-imported image shows what the mount showed.
func TestCommitKernelOverlayUpper(t *testing.T) {
	if !isRoot() {
		t.Skip("kernel overlay mounts need root")
	}
	s := openStore(t)
	// Kernel overlay does not read OCI whiteouts, so its lower is one plain layer.
	src := filepath.Join(t.TempDir(), "plain.tar")
	img := baseImage()
	img.Layers = img.Layers[:1]
	if err := imagetest.WriteDockerArchive(src, img); err != nil {
		t.Fatal(err)
	}
	mustImport(t, s, src)
	base, _ := s.Image("base:1")
	dir := t.TempDir()
	upper, work, mnt := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "mnt")
	for _, d := range []string{upper, work, mnt} {
		os.Mkdir(d, 0o755)
	}
	opts := "lowerdir=" + s.LayerDirs(base)[0] + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		t.Skipf("kernel overlay mount failed: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
			mounted = false
		}
	}
	t.Cleanup(unmount)
	changeTree(t, mnt)
	want := snapshot(t, mnt, false)
	unmount()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "etc/delete-me"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatalf("overlay did not leave a char-device whiteout: %v", err)
	}
	got, top := commitAndReimport(t, s, upper)
	diffTrees(t, want, got)
	// The overlay formats were converted, not copied.
	for _, p := range []string{"etc/.wh.delete-me", "data/.wh..wh..opq"} {
		if st, err := os.Lstat(filepath.Join(top, p)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("committed layer lacks OCI whiteout %s: %v", p, err)
		}
	}
	if xattrString(filepath.Join(top, "data")) != "" {
		t.Errorf("overlay xattrs leaked into the layer: %s", xattrString(filepath.Join(top, "data")))
	}
}

// changeTree adds, modifies, deletes a lower file and replaces a directory.
func changeTree(t *testing.T, root string) {
	t.Helper()
	p := func(rel string) string { return filepath.Join(root, rel) }
	steps := []error{
		os.WriteFile(p("etc/motd"), []byte("changed motd\n"), 0o644),
		os.WriteFile(p("etc/new"), []byte("new file\n"), 0o600),
		os.Remove(p("etc/delete-me")),
		os.RemoveAll(p("data")),
		os.Mkdir(p("data"), 0o750),
		os.WriteFile(p("data/fresh"), []byte("fresh\n"), 0o644),
		os.Symlink("new", p("etc/newlink")),
		os.Chmod(p("etc/motd"), 0o600),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("change step %d: %v", i, err)
		}
	}
}

// TestInterruptedImport kills an import with SIGKILL in the middle of a
// layer and checks that nothing half-done is used afterwards.
func TestInterruptedImport(t *testing.T) {
	if os.Getenv("LAYERS_TEST_CHILD") == "import" {
		childImport()
		return
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "rich.tar")
	if err := imagetest.WriteDockerArchive(src, richImage()); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "store")
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptedImport$")
	cmd.Env = append(os.Environ(), "LAYERS_TEST_CHILD=import", "LAYERS_TEST_ROOT="+root, "LAYERS_TEST_SRC="+src)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The child prints a line once it is inside a layer, then stalls.
	buf := make([]byte, 64)
	if n, err := stdout.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "in-layer") {
		t.Fatalf("child did not reach a layer: %q %v", buf[:n], err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s, err := layers.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, filepath.Join(root, "layers")); len(got) != 0 {
		t.Errorf("a killed import published layers: %v", got)
	}
	if got := listDir(t, filepath.Join(root, "tmp")); len(got) == 0 {
		t.Errorf("expected the killed import's staging dir to be left in tmp/")
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("a killed import recorded images")
	}
	imgs := mustImport(t, s, src)
	checkBaseLayer(t, s.LayerDirs(imgs[0])[2])
	if got := listDir(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("stale staging not cleared: %v", got)
	}
}

// childImport runs in the re-executed test binary.
func childImport() {
	s, err := layers.Open(os.Getenv("LAYERS_TEST_ROOT"))
	if err != nil {
		os.Exit(3)
	}
	s.Import(os.Getenv("LAYERS_TEST_SRC"), layers.ImportOptions{Progress: stallProgress{}})
	os.Exit(4) // never reached: the parent kills us
}

// stallProgress announces the first layer and then blocks it forever.
type stallProgress struct{}

func (stallProgress) Start(string, int64) io.WriteCloser { return stallWriter{} }

type stallWriter struct{}

func (stallWriter) Write(p []byte) (int, error) {
	os.Stdout.WriteString("in-layer\n")
	time.Sleep(time.Hour)
	return len(p), nil
}
func (stallWriter) Close() error { return nil }

// TestErrorContextOnce: the diff tar names the file that failed and leaves
// the word "commit" to the caller that commits, so `unionfsd diff` does not
// report a commit and a commit says "commit:" once.
func TestErrorContextOnce(t *testing.T) {
	if !isRoot() {
		t.Skip("the metacopy pointer is a trusted.* xattr: needs root")
	}
	s := openStore(t)
	importBase(t, s)
	upper := t.TempDir()
	f := filepath.Join(upper, "f")
	if err := os.WriteFile(f, []byte("xx"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A pointer to data no lower layer has: both must fail.
	if err := unix.Lsetxattr(f, "trusted.unionfsd.metacopy", []byte("no/such/data"), 0); err != nil {
		t.Fatal(err)
	}
	err := layers.WriteDiffTar(upper, nil, io.Discard)
	if err == nil || strings.Contains(err.Error(), "commit") {
		t.Errorf("WriteDiffTar: %v; want an error that does not speak of a commit", err)
	}
	_, err = s.Commit(upper, "base:1", "committed:1", layers.CommitOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "commit: ") || strings.Count(err.Error(), "commit:") != 1 {
		t.Errorf("Commit: %v; want one \"commit: \" in front", err)
	}
}
