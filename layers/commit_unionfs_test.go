package layers_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/unionfs"
)

// TestCommitUnionfsMount mounts an image's layer stack with unionfsd, makes
// changes through the mount (add, modify, delete a lower file, replace a
// dir), commits the upper, imports the result fresh and checks that its
// merged view equals what the mount showed before the commit.
// Run it under flock /tmp/unionfsd-fusetest.lock like every FUSE test.
func TestCommitUnionfsMount(t *testing.T) {
	for _, metacopy := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy-up", true: "metacopy"}[metacopy], func(t *testing.T) {
			commitUnionfsMount(t, metacopy)
		})
	}
}

// commitUnionfsMount is TestCommitUnionfsMount, with metadata-only
// copy-up on or off: with it on, a chmod of a lower file leaves a metacopy
// entry, and the commit must put the lower data in the layer.
func commitUnionfsMount(t *testing.T, metacopy bool) {
	testsupport.RequireFUSE(t)
	s := openStore(t)
	base := importBase(t, s)
	dir := t.TempDir()
	upper, mnt := filepath.Join(dir, "upper"), filepath.Join(dir, "mnt")
	os.Mkdir(upper, 0o755)
	os.Mkdir(mnt, 0o755)
	cfg := unionfs.DefaultConfig()
	cfg.Lowers = s.LayerDirs(base)
	cfg.Upper = upper // workdir defaults to upper/.wh..wh.unionfsd.work
	cfg.Metacopy = metacopy
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
	if err := os.Chmod(filepath.Join(mnt, "etc/added-in-2"), 0o604); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, mnt, false)
	unmount()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "etc/added-in-2"), &st); err != nil {
		t.Fatal(err)
	}
	if metacopy && st.Blocks != 0 {
		t.Fatalf("chmod with metacopy on copied data (%d blocks): no metacopy entry to commit", st.Blocks)
	}

	got, _ := commitAndReimport(t, s, upper)
	diffTrees(t, want, got)
}
