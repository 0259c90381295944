// Package podman runs podman with unionfsd as the mount_program of
// containers-storage's overlay driver, the way a rootless user on a host
// without kernel overlay would set it up: load an image, run a container
// that reads, writes and deletes, commit it, run the result, and run it
// again with an id mapping (uidmapping=/gidmapping=). As root and as an
// unprivileged user with subordinate id ranges. It also mounts layers that
// containers-storage wrote for kernel overlay (0/0 whiteouts, opaque
// xattrs).
package podman

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

const (
	imageRef     = "localhost/unionfsd-podman:1"
	committedRef = "localhost/unionfsd-podman:committed"
)

// writeTestImage writes a docker-archive of busybox with two more layers'
// worth of cases: a whiteout, an opaque dir and a file owned by 123:456.
func writeTestImage(t *testing.T, p string) {
	t.Helper()
	img, err := imagetest.BusyboxSpec()
	if errors.Is(err, imagetest.ErrNoBusybox) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	img.Names = []string{imageRef}
	img.Layers[0].Entries = append(img.Layers[0].Entries,
		imagetest.Dir("data", 0o755),
		imagetest.File("data/keep", "keep\n", 0o644),
		imagetest.File("data/gone", "gone\n", 0o644),
		imagetest.Dir("opq", 0o755),
		imagetest.File("opq/old", "old\n", 0o644),
		imagetest.File("owned", "owned\n", 0o640).WithOwner(123, 456))
	img.Layers = append(img.Layers, imagetest.Layer{Entries: []imagetest.Entry{
		imagetest.Dir("data", 0o755),
		imagetest.Whiteout("data/gone"),
		imagetest.File("data/l2", "from layer 2\n", 0o644),
		imagetest.Dir("opq", 0o755),
		imagetest.Opaque("opq"),
		imagetest.File("opq/new", "new\n", 0o644),
	}})
	if err := imagetest.WriteDockerArchive(p, img); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
}

func TestPodmanRoot(t *testing.T) {
	requirePodman(t)
	e := newEnv(t, nil, unionfsdBin)
	e.requireRunnable()
	// Stored ids are host ids; the mapped run uses the usual 100000 range.
	podmanScenario(t, e, "0:100000:65536", func(uid, gid int) (int, int) { return uid, gid })
}

func TestPodmanRootless(t *testing.T) {
	requirePodman(t)
	cred, subUID, subGID := testUser(t)
	fuseForUsers(t)
	e := newEnv(t, cred, unionfsdBin)
	e.requireRunnable()
	// Rootless podman's user namespace maps 0 to the user and 1.. to the
	// subordinate range, so the image's ids are stored as subordinate ids:
	// ownership stays visible inside without any xattr. The mapped run maps
	// the container into that namespace's ids 1..65536.
	podmanScenario(t, e, "0:1:65536", func(uid, gid int) (int, int) {
		if uid == 0 {
			return int(cred.Uid), int(cred.Gid)
		}
		return subUID + uid - 1, subGID + gid - 1
	})
}

// podmanScenario loads, runs, commits and runs again. mapping is the
// --uidmap/--gidmap of the last run; host turns an id of podman's user
// namespace into the id the files have on disk.
func podmanScenario(t *testing.T, e *env, mapping string, host func(uid, gid int) (int, int)) {
	tar := filepath.Join(e.base, "image.tar")
	writeTestImage(t, tar)
	e.must("load", "-i", tar)

	// 1. Read the image, then write and delete.
	out := e.run("--name", "c1", imageRef, "sh", "-c", `grep ' / ' /proc/mounts
cat /data/keep /data/l2; ls -1 /data; ls -1 /opq; stat -c '%u:%g %a' /owned
echo written > /data/new && rm /data/keep && echo appended >> /data/l2 &&
rm -r /opq && mkdir /opq && echo fresh > /opq/fresh && mkdir /made && chown 123:456 /made && echo done`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "fuse.unionfsd") {
		t.Fatalf("the container's / is not a unionfsd mount: %q", out)
	}
	expectLines(t, "first run", lines[1:], "keep", "from layer 2", "keep", "l2", "new", "123:456 640", "done")

	// 2. Its upper, as containers-storage left it: OCI whiteouts.
	upper := strings.TrimSpace(e.must("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "c1"))
	expectFile(t, upper, "data/new", "written\n")
	expectFile(t, upper, "data/l2", "from layer 2\nappended\n")
	expectFile(t, upper, "opq/fresh", "fresh\n")
	for _, p := range []string{"data/.wh.keep", "opq/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(upper, p)); err != nil {
			t.Errorf("upper: %v", err)
		}
	}
	for _, p := range []string{"opq/old", "opq/new", "data/keep"} {
		if _, err := os.Lstat(filepath.Join(upper, p)); err == nil {
			t.Errorf("upper holds %s, want it absent", p)
		}
	}
	expectOwner(t, filepath.Join(upper, "made"), host, 123, 456)
	diff := e.must("diff", "c1")
	for _, want := range []string{"A /data/new", "D /data/keep", "C /data/l2", "A /made", "A /opq/fresh"} {
		if !strings.Contains(diff, want+"\n") {
			t.Errorf("podman diff c1 lacks %q:\n%s", want, diff)
		}
	}

	// 3. Commit and run the result.
	e.must("commit", "c1", committedRef)
	out = e.run("--rm", committedRef, "sh", "-c",
		`cat /data/new /data/l2 /opq/fresh; ls -1 /data; ls -1 /opq; stat -c '%u:%g' /made /owned`)
	expectLines(t, "committed image", strings.Split(strings.TrimSpace(out), "\n"),
		"written", "from layer 2", "appended", "fresh", "l2", "new", "fresh", "123:456", "123:456")

	// 4. With an id mapping: containers-storage passes uidmapping= and
	// gidmapping=, the container still sees the image's ids, and its new
	// files are stored with the image side's ids.
	out = e.run("--name", "c3", "--uidmap", mapping, "--gidmap", mapping, committedRef, "sh", "-c",
		`cat /proc/self/uid_map; stat -c '%u:%g' /made /owned /data/new; touch /mapped; stat -c '%u:%g' /mapped`)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0])[:2], ":") != strings.Join(strings.Split(mapping, ":")[:2], ":") {
		t.Fatalf("the mapped container's uid_map is not %s: %q", mapping, out)
	}
	expectLines(t, "mapped run", lines[1:], "123:456", "123:456", "0:0", "0:0")
	upper3 := strings.TrimSpace(e.must("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "c3"))
	expectOwner(t, filepath.Join(upper3, "mapped"), host, 0, 0)

	// 5. Every container stopped: every mount gone, every daemon ended.
	if !eventually(10*time.Second, func() bool { return len(ourDaemons(e.base)) == 0 }) {
		t.Errorf("unionfsd still running after the containers stopped: pids %v", ourDaemons(e.base))
	}
}

// expectLines compares output lines (surrounding space trimmed).
func expectLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for i := range got {
		got[i] = strings.TrimSpace(got[i])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s printed\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func expectFile(t *testing.T, dir, name, want string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || string(data) != want {
		t.Errorf("%s = %q (%v), want %q", name, data, err, want)
	}
}

// expectOwner checks p is stored as the namespace ids uid:gid.
func expectOwner(t *testing.T, p string, host func(uid, gid int) (int, int), uid, gid int) {
	t.Helper()
	wantUID, wantGID := host(uid, gid)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Errorf("%v", err)
		return
	}
	if int(st.Uid) != wantUID || int(st.Gid) != wantGID {
		t.Errorf("%s is stored as %d:%d, want %d:%d (%d:%d in podman's user namespace)",
			p, st.Uid, st.Gid, wantUID, wantGID, uid, gid)
	}
}

// TestKernelOverlayLayers loads the image into a storage that uses the
// kernel's overlay, so containers-storage writes 0/0 character-device
// whiteouts and trusted.overlay.opaque into the layers, then switches the
// same storage to unionfsd as mount_program and runs a container on them.
func TestKernelOverlayLayers(t *testing.T) {
	requirePodman(t)
	e := newEnv(t, nil, "")
	tar := filepath.Join(e.base, "image.tar")
	writeTestImage(t, tar)
	if r := e.podman("load", "-i", tar); r.code != 0 {
		t.Skipf("podman cannot use kernel overlay under %s: %s", e.base, lastLines(r.err, 2))
	}
	top := strings.TrimSpace(e.must("image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", imageRef))
	// The premise: these layers use kernel overlay's format.
	var st unix.Stat_t
	if err := unix.Lstat(top+"/data/gone", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("%s/data/gone is not a 0/0 whiteout (%v): did containers-storage change its format?", top, err)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(top+"/opq", "trusted.overlay.opaque", buf); err != nil || string(buf[:max(n, 0)]) != "y" {
		t.Fatalf("%s/opq has no trusted.overlay.opaque=y (%v)", top, err)
	}

	e.mountProgram = unionfsdBin
	e.requireRunnable()
	out := e.run("--name", "k1", imageRef, "sh", "-c",
		`grep ' / ' /proc/mounts; ls -1 /data; ls -1 /opq; stat -c '%u:%g' /owned; rm /data/keep /data/l2; ls -1 /data`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "fuse.unionfsd") {
		t.Fatalf("the container's / is not a unionfsd mount: %q", out)
	}
	expectLines(t, "run on kernel-overlay layers", lines[1:], "keep", "l2", "new", "123:456")
	upper := strings.TrimSpace(e.must("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "k1"))
	for _, p := range []string{"data/.wh.keep", "data/.wh.l2"} {
		if _, err := os.Lstat(filepath.Join(upper, p)); err != nil {
			t.Errorf("upper: %v", err)
		}
	}
	if !eventually(10*time.Second, func() bool { return len(ourDaemons(e.base)) == 0 }) {
		t.Errorf("unionfsd still running after the container stopped: pids %v", ourDaemons(e.base))
	}
}
