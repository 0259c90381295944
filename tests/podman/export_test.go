package podman

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
)

// TestPodmanLoadsOurExports checks that what `crun-lite export` writes, in
// both archive formats, is an image podman loads and runs with the same
// content (the layers issue asks for this beside skopeo's check).
func TestPodmanLoadsOurExports(t *testing.T) {
	requirePodman(t)
	e := newEnv(t, nil, unionfsdBin)
	e.requireRunnable()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.tar")
	writeTestImage(t, src)
	store, err := layers.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(src, layers.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, format := range []layers.Format{layers.FormatDockerArchive, layers.FormatOCIArchive} {
		t.Run(string(format), func(t *testing.T) {
			out := filepath.Join(dir, "export-"+string(format)+".tar")
			if err := store.Export(imageRef, out, format, layers.ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			loaded := e.must("load", "-i", out)
			ref := imageRef
			if format == layers.FormatOCIArchive {
				// podman names an OCI archive's image after its ref annotation.
				ref = lastField(loaded)
			}
			got := e.run("--rm", ref, "sh", "-c", "cat /data/keep /data/l2 /opq/new; ls /opq; ls /data")
			want := "keep\nfrom layer 2\nnew\nnew\nkeep\nl2\n"
			if got != want {
				t.Errorf("container of the loaded %s export printed %q, want %q", format, got, want)
			}
			e.must("rmi", "-f", ref)
		})
	}
}

// lastField is the last word of podman load's output ("Loaded image: X").
func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}
