package faults

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestImportENOSPC imports the busybox image into stores on a tmpfs with
// less free space than the import needs, at several fill levels so that
// the space runs out in different phases (blob, extraction, index). Each
// import must fail with ENOSPC and a one-line error and leave the store
// consistent with no image added; once space is back the same import
// succeeds and the image is complete, even where it reuses what the failed
// import published.
func TestImportENOSPC(t *testing.T) {
	testsupport.RequireFUSE(t)
	archive := testsupport.BusyboxImage(t)
	busybox, err := imagetest.FindBusybox()
	if err != nil {
		t.Skip(err)
	}
	fsRoot := mountTmpfs(t, 32<<20)
	need := spaceUsed(t, fsRoot, func() {
		s := openStore(t, filepath.Join(fsRoot, "measure"))
		mustImport(t, s, archive)
	})
	if err := os.RemoveAll(filepath.Join(fsRoot, "measure")); err != nil {
		t.Fatal(err)
	}
	for i, leave := range []int64{0, need / 3, 3 * need / 4, need - 4096} {
		t.Run(fmt.Sprintf("free=%dK", leave>>10), func(t *testing.T) {
			root := filepath.Join(fsRoot, fmt.Sprintf("store%d", i))
			s := openStore(t, root)
			filler := fill(t, fsRoot, leave)
			_, err := s.Import(archive, layers.ImportOptions{})
			assertErrno(t, fmt.Sprintf("import needing %d KiB with %d KiB free", need>>10, leave>>10), err, syscall.ENOSPC)
			assertOneLine(t, err)
			assertStore(t, s, nil)

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			imgs := mustImport(t, s, archive)
			assertStore(t, s, []string{"busybox:latest"})
			got := readFile(t, filepath.Join(s.LayerDirs(imgs[0])[0], "bin", "busybox"))
			if !bytes.Equal(got, readFile(t, busybox)) {
				t.Errorf("bin/busybox in the stored layer is %d bytes, not the original", len(got))
			}
			if err := os.RemoveAll(root); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCommitENOSPC commits a union's upper into a store on a tmpfs with
// less free space than the new layer needs, at several fill levels. Each
// commit must fail with ENOSPC and leave the store consistent with only the
// base image; once space is back the same commit succeeds and the new
// layer holds the upper's content.
func TestCommitENOSPC(t *testing.T) {
	testsupport.RequireFUSE(t)
	archive := testsupport.BusyboxImage(t)
	fsRoot := mountTmpfs(t, 48<<20)
	s := openStore(t, filepath.Join(fsRoot, "store"))
	base := mustImport(t, s, archive)[0]

	// The change: made through a unionfsd mount of the image, as crun-lite
	// does, with the upper outside the store's file system.
	dir := t.TempDir()
	u := mountUnionLowers(t, s.LayerDirs(base), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	big := randomBytes(7, 1<<20) // incompressible: the gzip blob is as big
	writeFile(t, u.m("data/big"), big)
	writeFile(t, u.m("etc/motd"), []byte("committed\n"))
	if err := os.Remove(u.m("bin/ls")); err != nil {
		t.Fatal(err)
	}

	need := spaceUsed(t, fsRoot, func() {
		if _, err := s.Commit(u.upper, "busybox:latest", "measure:1", layers.CommitOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Remove("measure:1"); err != nil {
			t.Fatal(err)
		}
	})
	if need != 0 {
		t.Fatalf("commit and rmi left %d bytes behind in the store", need)
	}
	// The staged blob, its copy into the store and the extracted layer.
	need = int64(3 * len(big))
	for i, leave := range []int64{0, need / 6, need / 2, 3 * need / 5, 4 * need / 5} {
		t.Run(fmt.Sprintf("free=%dK", leave>>10), func(t *testing.T) {
			name := fmt.Sprintf("committed:%d", i)
			filler := fill(t, fsRoot, leave)
			_, err := s.Commit(u.upper, "busybox:latest", name, layers.CommitOptions{})
			assertErrno(t, fmt.Sprintf("commit needing %d KiB with %d KiB free", need>>10, leave>>10), err, syscall.ENOSPC)
			assertOneLine(t, err)
			assertStore(t, s, []string{"busybox:latest"})

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			img, err := s.Commit(u.upper, "busybox:latest", name, layers.CommitOptions{})
			if err != nil {
				t.Fatalf("commit once space is back: %v", err)
			}
			assertStore(t, s, []string{"busybox:latest", name})
			top := s.LayerDirs(img)[0]
			if got := readFile(t, filepath.Join(top, "data", "big")); !bytes.Equal(got, big) {
				t.Errorf("data/big in the committed layer is %d bytes, not what the mount wrote", len(got))
			}
			if _, err := s.Remove(name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func openStore(t *testing.T, root string) *layers.Store {
	t.Helper()
	s, err := layers.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustImport(t *testing.T, s *layers.Store, archive string) []*layers.Image {
	t.Helper()
	imgs, err := s.Import(archive, layers.ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", archive, err)
	}
	return imgs
}

// spaceUsed returns how many more bytes the file system at root uses after
// fn than before.
func spaceUsed(t *testing.T, root string, fn func()) int64 {
	t.Helper()
	before := freeBytes(t, root)
	fn()
	return before - freeBytes(t, root)
}

func assertOneLine(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

// assertStore checks that the store lists exactly the images named
// (sorted by name) and is consistent: no staging left in tmp/, no temp
// file beside images.json, every blob matching its digest, every layer dir
// complete with a layer.json naming it, every image's layers present.
func assertStore(t *testing.T, s *layers.Store, names []string) {
	t.Helper()
	imgs, err := s.Images()
	if err != nil {
		t.Fatalf("store unreadable: %v", err)
	}
	var got []string
	for _, img := range imgs {
		got = append(got, img.Names...)
		for _, d := range s.LayerDirs(img) {
			if st, err := os.Stat(d); err != nil || !st.IsDir() {
				t.Errorf("image %s: layer dir %s: %v", img.Names, d, err)
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Errorf("store lists images %v, want %v", got, names)
	}
	root := s.Root()
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) > 0 {
		t.Errorf("store tmp/ holds %d entries after the operation returned: %s", len(ents), ents[0].Name())
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("store root holds the temp file %s", e.Name())
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	for _, b := range blobs {
		data := readFile(t, filepath.Join(root, "blobs", "sha256", b.Name()))
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != b.Name() {
			t.Errorf("blob %s (%d bytes) does not match its digest", b.Name(), len(data))
		}
	}
	lays, _ := os.ReadDir(filepath.Join(root, "layers"))
	for _, l := range lays {
		var meta struct {
			ChainID string `json:"chainID"`
		}
		data, err := os.ReadFile(filepath.Join(root, "layers", l.Name(), "layer.json"))
		if err == nil {
			err = json.Unmarshal(data, &meta)
		}
		if err != nil || meta.ChainID != "sha256:"+l.Name() {
			t.Errorf("layer %s: layer.json %q: %v", l.Name(), data, err)
		}
		if st, err := os.Stat(filepath.Join(root, "layers", l.Name(), "diff")); err != nil || !st.IsDir() {
			t.Errorf("layer %s has no diff dir: %v", l.Name(), err)
		}
	}
}

// TestImportCLIENOSPC runs crun-lite import into a store on a full tmpfs:
// it must exit non-zero with a one-line error naming the cause, list no
// image, and import fine once space is back.
func TestImportCLIENOSPC(t *testing.T) {
	testsupport.RequireFUSE(t)
	archive := testsupport.BusyboxImage(t)
	crun := buildCrunLite(t)
	fsRoot := mountTmpfs(t, 16<<20)
	root := filepath.Join(fsRoot, "store")
	cli := func(args ...string) (int, string, string) {
		cmd := exec.Command(crun, append([]string{"--root", root}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("crun-lite %v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	if code, _, stderr := cli("images"); code != 0 {
		t.Fatalf("crun-lite images on an empty store: exit %d: %s", code, stderr)
	}
	filler := fill(t, fsRoot, 1<<20)
	code, _, stderr := cli("import", archive)
	if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "no space left on device") {
		t.Errorf("crun-lite import into a full store: exit %d, stderr %q; want non-zero and one line naming the cause", code, stderr)
	}
	if code, out, stderr := cli("images", "--ids"); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("crun-lite images after the failed import: exit %d, %q %s", code, out, stderr)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli("import", archive); code != 0 {
		t.Fatalf("crun-lite import once space is back: exit %d: %s", code, stderr)
	}
	if code, out, _ := cli("images"); code != 0 || !strings.Contains(out, "busybox") {
		t.Errorf("crun-lite images after the import: exit %d, %q", code, out)
	}
}

// buildCrunLite builds the crun-lite binary into a temp dir.
func buildCrunLite(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "crun-lite")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/unionfsd/unionfsd/cmd/crun-lite").CombinedOutput()
	if err != nil {
		t.Fatalf("go build crun-lite: %v\n%s", err, out)
	}
	return bin
}

// TestImportEIO imports the busybox image into stores on a file system
// whose writes start failing with EIO after a given amount of data (or at
// once, names included): each import must fail with EIO, promptly, and
// leave the store consistent with no image; once writes work the same
// import succeeds.
func TestImportEIO(t *testing.T) {
	testsupport.RequireFUSE(t)
	archive := testsupport.BusyboxImage(t)
	ff := mountFaultFS(t)
	for i, budget := range []int64{-1, 0, 1 << 20, 3 << 20} {
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
			s := openStore(t, filepath.Join(ff.mnt, fmt.Sprintf("store%d", i)))
			if budget < 0 {
				ff.breakWrites()
			} else {
				ff.failDataAfter(budget)
			}
			var err error
			within(t, 20*time.Second, "import onto failing writes", func() error {
				_, err = s.Import(archive, layers.ImportOptions{})
				return nil
			})
			assertErrno(t, "import onto failing writes", err, syscall.EIO)
			assertOneLine(t, err)
			ff.heal()
			assertStore(t, s, nil)
			mustImport(t, s, archive)
			assertStore(t, s, []string{"busybox:latest"})
		})
	}
}
