package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// testUser creates an unprivileged user with a home under testTmp and
// deletes it (and its processes) at cleanup.
func testUser(t *testing.T) (*syscall.Credential, string, int) {
	t.Helper()
	for _, tool := range []string{"useradd", "userdel", "newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install passwd uidmap)", tool)
		}
	}
	name := fmt.Sprintf("crlt%d", os.Getpid()%1000000)
	home := filepath.Join(testTmp, name)
	if out, err := exec.Command("useradd", "-M", "-d", home, "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		exec.Command("userdel", name).Run()
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	t.Cleanup(func() {
		killUserProcesses(uid)
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		os.RemoveAll(home)
	})
	os.Mkdir(home, 0o700)
	os.Chown(home, uid, gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, home, subUIDStart(name)
}

// killUserProcesses kills, by pid, what still runs as the test user.
func killUserProcesses(uid int) {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", d.Name()), &st) == nil && int(st.Uid) == uid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// subUIDStart is the first id of the user's /etc/subuid range, or -1.
func subUIDStart(name string) int {
	data, _ := os.ReadFile("/etc/subuid")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 3 && f[0] == name {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

// fuseMode sets the mode of /dev/fuse, restoring the old one at cleanup.
func fuseMode(t *testing.T, mode os.FileMode) {
	t.Helper()
	st, err := os.Stat("/dev/fuse")
	if err != nil {
		t.Skip("no /dev/fuse")
	}
	old := st.Mode().Perm()
	if err := os.Chmod("/dev/fuse", mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod("/dev/fuse", old) })
}

func TestRunRootlessUser(t *testing.T) {
	needContainers(t)
	cred, home, subStart := testUser(t)
	e := &env{t: t, store: filepath.Join(home, "store"), cred: cred, home: home}
	e.importImage(busyboxTar)
	t.Cleanup(e.cleanup)

	// Without access to /dev/fuse: one clear line, nothing created.
	fuseMode(t, 0o600)
	if r := e.run("run", "--rm", "busybox", "true"); r.code != 125 || !strings.Contains(r.err, "/dev/fuse") {
		t.Errorf("without /dev/fuse access: %v", r)
	}
	os.Chmod("/dev/fuse", 0o666)

	// A root-owned secret the user may traverse to but not read.
	secret := filepath.Join(testTmp, "secret-"+strconv.Itoa(int(cred.Uid)))
	os.Mkdir(secret, 0o755)
	os.WriteFile(filepath.Join(secret, "file"), []byte("top secret"), 0o600)
	t.Cleanup(func() { os.RemoveAll(secret) })

	layer := e.layerDir()
	before := treeDigest(t, layer)
	script := `id -u; head -1 /proc/self/uid_map
echo hi > /root/f; mkdir /tmp/d; touch /tmp/d/g; chown -R 1000:1000 /tmp/d; chmod 700 /tmp/d
cat /secret/file 2>/dev/null || echo read-denied
touch /secret/new 2>/dev/null || echo write-denied`
	// A limit that cannot be enforced is refused, never dropped.
	r := e.run("run", "--rootless", "--rm", "--memory", "64m", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.err, "memory limit: cannot be enforced for a rootless container") ||
		strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Fatalf("rootless run with --memory should fail with one line and exit 125: %v", r)
	}
	r = e.run("run", "--rootless", "--name", "rl", "-v", secret+":/secret", "busybox", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("rootless run: %v", r)
	}
	out := r.out
	got := lines(out)
	for i := range got {
		got[i] = strings.Join(strings.Fields(got[i]), " ")
	}
	want := []string{"0", fmt.Sprintf("0 %d 1", cred.Uid), "read-denied", "write-denied"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rootless run: got %q, want %q", got, want)
	}
	upper := filepath.Join(e.containerDir("rl"), "upper")
	if st, err := os.Stat(filepath.Join(upper, "root/f")); err != nil || st.Sys().(*syscall.Stat_t).Uid != cred.Uid {
		t.Errorf("upper/root/f should belong to the user (root inside): %v", err)
	}
	if subStart >= 0 {
		// Only a union server inside the user namespace can chown to a
		// mapped id: the user cannot do that outside.
		st, err := os.Stat(filepath.Join(upper, "tmp/d"))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(subStart+999) {
			t.Errorf("upper/tmp/d should belong to subuid %d: %v %v", subStart+999, err, st)
		}
	}
	if treeDigest(t, layer) != before {
		t.Errorf("the image layer changed")
	}
	// rm needs the user namespace to delete the 0700 dir of a mapped user.
	e.mustRun("rm", "rl")
	if n := e.containerCount(); n != 0 {
		t.Errorf("rm left %d container dirs", n)
	}
	if subStart >= 0 {
		checkRootlessImageOwners(t, e, subStart)
	}

	// The supervisor, and so the union server, runs in the user namespace.
	cmd, sc := e.background("run", "--rm", "--name", "bg", "busybox", "sh", "-c", "echo up; exec sleep 30")
	waitLine(t, sc, "up")
	var st struct{ Supervisor int }
	data, _ := os.ReadFile(filepath.Join(e.containerDir("bg"), "state.json"))
	json.Unmarshal(data, &st)
	uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", st.Supervisor))
	if err != nil || !strings.HasPrefix(strings.Join(strings.Fields(string(uidMap)), " "), fmt.Sprintf("0 %d 1", cred.Uid)) {
		t.Errorf("supervisor %d uid_map %q (%v): not in the container's user namespace", st.Supervisor, uidMap, err)
	}
	e.mustRun("rm", "-f", "bg")
	cmd.Wait()
}

// checkRootlessImageOwners imports, as the user, an image with files of
// other users: the layer stores them as subordinate ids, a rootless
// container shows the image's owners, and rmi can delete them again.
func checkRootlessImageOwners(t *testing.T, e *env, subStart int) {
	t.Helper()
	img, err := imagetest.BusyboxSpec()
	if err != nil {
		t.Fatal(err)
	}
	img.Names = []string{"owned:1"}
	img.Layers[0].Entries = append(img.Layers[0].Entries,
		imagetest.File("owned", "owned\n", 0o640).WithOwner(123, 456),
		imagetest.Dir("home", 0o755), imagetest.Dir("home/u", 0o750).WithOwner(1000, 1000),
		imagetest.File("home/u/f", "f\n", 0o600).WithOwner(1000, 1000))
	tarPath := filepath.Join(testTmp, fmt.Sprintf("owned-%d.tar", e.cred.Uid))
	if err := imagetest.WriteDockerArchive(tarPath, img); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tarPath, 0o644)
	t.Cleanup(func() { os.Remove(tarPath) })
	e.importImage(tarPath)
	matches, _ := filepath.Glob(filepath.Join(e.store, "layers", "*", "diff", "owned"))
	if len(matches) != 1 {
		t.Fatalf("layer file /owned: %v", matches)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(matches[0], &st); err != nil || st.Uid != uint32(subStart+122) || st.Gid < uint32(subStart) {
		t.Errorf("layer's /owned stored as %d:%d (%v), want uid %d (image uid 123 through the subordinate range)", st.Uid, st.Gid, err, subStart+122)
	}
	got := e.mustRun("run", "--rm", "--rootless", "owned:1", "sh", "-c", "stat -c %u:%g /owned /home/u/f; cat /home/u/f")
	if got != "123:456\n1000:1000\nf\n" {
		t.Errorf("rootless container of a rootless import shows %q, want the image's owners", got)
	}
	e.mustRun("rmi", "owned:1")
}
