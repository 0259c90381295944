package walkthrough

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestRunnerWalkthrough runs docs/runner-walkthrough.md, the runner's
// lesson: a docker-save tarball by hand and with crun-lite, a container
// from namespaces, a union mount and pivot_root by hand and with
// crun-lite run, and the OCI lifecycle of a bundle.
func TestRunnerWalkthrough(t *testing.T) {
	testsupport.RequireFUSE(t)
	for _, tool := range []string{"unshare", "pivot_root", "tar", "sha256sum", "awk", "diff", "join"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: apt-get install util-linux tar coreutils diffutils", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("/bin/busybox missing (scripts/mkimage.sh needs it): apt-get install busybox-static")
	}
	runPage(t, page{
		doc: "../../docs/runner-walkthrough.md", dir: "/tmp/runner", minSteps: 30,
		prepare: installMkimage, cleanUp: deleteContainers,
	})
}

// installMkimage puts scripts/mkimage.sh on the PATH, as the document asks
// the reader to.
func installMkimage(t *testing.T, walk, bin string) {
	data, err := os.ReadFile("../../scripts/mkimage.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "mkimage.sh"), data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// deleteContainers removes the containers the document left in its
// store (a document that stops half-way may leave a created or running
// one), so that no container process or cgroup outlives the test.
func deleteContainers(t *testing.T, walk, bin string) {
	store := filepath.Join(walk, "store")
	ents, _ := os.ReadDir(filepath.Join(store, "containers"))
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") { // the store's .lock
			continue
		}
		t.Errorf("the walk-through left container %s; deleting it", e.Name())
		crun := filepath.Join(bin, "crun-lite")
		for _, verb := range []string{"delete", "rm"} { // a bundle's, an image's
			if _, err := os.Stat(filepath.Join(store, "containers", e.Name())); err != nil {
				break
			}
			if out, err := exec.Command(crun, "--root", store, verb, "-f", e.Name()).CombinedOutput(); err != nil {
				t.Logf("crun-lite %s -f %s: %v: %s", verb, e.Name(), err, out)
			}
		}
	}
}
