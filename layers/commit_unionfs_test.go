package layers_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unionfsd/unionfsd/unionfs"
)

// TestCommitUnionfsMount mounts an image's layer stack with unionfsd, makes
// changes through the mount (add, modify, delete a lower file, replace a
// dir), commits the upper, imports the result fresh and checks that its
// merged view equals what the mount showed before the commit.
// Run it under flock /tmp/unionfsd-fusetest.lock like every FUSE test.
func TestCommitUnionfsMount(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse: FUSE mounts need it (modprobe fuse)")
	}
	if !isRoot() {
		t.Skip("unionfs.Mount here mounts directly and needs root")
	}
	s := openStore(t)
	base := importBase(t, s)
	dir := t.TempDir()
	upper, mnt := filepath.Join(dir, "upper"), filepath.Join(dir, "mnt")
	os.Mkdir(upper, 0o755)
	os.Mkdir(mnt, 0o755)
	cfg := unionfs.DefaultConfig()
	cfg.Lowers = s.LayerDirs(base)
	cfg.Upper = upper // workdir defaults to upper/.wh..wh.unionfsd.work
	server, err := unionfs.Mount(mnt, cfg)
	if err != nil {
		t.Fatalf("unionfs.Mount: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if err := server.Unmount(); err != nil {
				t.Errorf("unmount: %v", err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)

	before := snapshot(t, mnt, false)
	if _, ok := before["etc/added-in-2"]; !ok {
		t.Fatalf("the union does not show the image: %v", before)
	}
	changeTree(t, mnt)
	want := snapshot(t, mnt, false)
	unmount()

	got, _ := commitAndReimport(t, s, upper)
	diffTrees(t, want, got)
}
