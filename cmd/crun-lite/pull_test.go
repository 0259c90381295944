package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// freshEnv is an env with an empty store (newEnv imports busybox).
func freshEnv(t *testing.T) *env {
	t.Helper()
	needContainers(t)
	e := &env{t: t, store: filepath.Join(t.TempDir(), "store")}
	t.Cleanup(e.cleanup)
	return e
}

// skopeoPush copies the test busybox into the registry with skopeo, which
// writes a docker schema 2 manifest with gzip layers.
func skopeoPush(t *testing.T, ref string) {
	t.Helper()
	out, err := exec.Command("skopeo", "copy", "-q", "--dest-tls-verify=false", "docker-archive:"+busyboxTar, "docker://"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy to %s: %v\n%s", ref, err, out)
	}
}

// TestPullPushRun: an image skopeo pushed is pulled and run; tagged and
// pushed again by crun-lite, it is pulled by the digest push printed into
// a fresh store and run by that digest.
func TestPullPushRun(t *testing.T) {
	e := freshEnv(t)
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	skopeoPush(t, reg+"/lib/busybox:1")

	e.mustRun("pull", reg+"/lib/busybox:1")
	if out := e.mustRun("run", "--rm", reg+"/lib/busybox:1", "cat", "/etc/group"); !strings.HasPrefix(out, "root:x:0:") {
		t.Errorf("run of the pulled image: %q", out)
	}
	e.mustRun("tag", reg+"/lib/busybox:1", "mine:2")
	pushed := strings.TrimSpace(e.mustRun("push", "mine:2", reg+"/team/mine:2"))
	if !strings.HasPrefix(pushed, reg+"/team/mine@sha256:") {
		t.Fatalf("push printed %q, want %s/team/mine@sha256:...", pushed, reg)
	}

	e2 := freshEnv(t)
	out := e2.mustRun("pull", pushed)
	if !strings.Contains(out, "sha256:") {
		t.Errorf("pull by digest printed %q", out)
	}
	if r := e2.run("run", "--rm", pushed, "true"); r.code != 0 {
		t.Errorf("run by digest: %v", r)
	}
	if r := e2.run("run", "--rm", reg+"/team/mine:2", "true"); r.code == 0 {
		t.Errorf("a pull by digest named the image by tag too: %v", r)
	}
}

// TestImportStdin: skopeo writing a docker-archive into a pipe, crun-lite
// import - reading it (the command line); then the image runs.
func TestImportStdin(t *testing.T) {
	e := freshEnv(t)
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	skopeoPush(t, reg+"/lib/busybox:1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	skopeo := exec.CommandContext(ctx, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+reg+"/lib/busybox:1", "docker-archive:/dev/stdout:piped/busybox:7")
	imp := e.cmd(ctx, "import", "-")
	pipe, err := skopeo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	var impOut, impErr, skErr strings.Builder
	imp.Stdout, imp.Stderr, skopeo.Stderr = &impOut, &impErr, &skErr
	if err := skopeo.Start(); err != nil {
		t.Fatal(err)
	}
	impRunErr := imp.Run()
	pipe.Close() // a writer left alone now gets EPIPE instead of blocking
	skopeoErr := skopeo.Wait()
	if impRunErr != nil || !strings.Contains(impOut.String(), "piped/busybox:7") {
		t.Fatalf("import - from a pipe: %v %q %q", impRunErr, impOut.String(), impErr.String())
	}
	if skopeoErr != nil {
		t.Fatalf("skopeo: %v %s", skopeoErr, skErr.String())
	}
	if r := e.run("run", "--rm", "piped/busybox:7", "true"); r.code != 0 {
		t.Errorf("run of the piped image: %v", r)
	}
}

// TestRegistryErrors: each bad input gets one line on stderr and its exit
// code; nothing here needs containers.
func TestRegistryErrors(t *testing.T) {
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	root := filepath.Join(t.TempDir(), "store")
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "auth.json"))
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	closed := testsupport.ClosedLoopbackAddr(t)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"pull", reg + "/nothing/here:1"}, exitNotFound, "image not found"},
		{[]string{"pull", "team/UPPER"}, exitFailure, "invalid reference format"},
		{[]string{"pull", closed + "/x:1"}, exitFailure, "registry unreachable"},
		{[]string{"pull"}, exitUsage, "want one IMAGE"},
		{[]string{"push", "nope:1", reg + "/x:1"}, exitNotFound, "image not found: nope:1"},
		{[]string{"push", "nope:1", reg + "/x@sha256:" + strings.Repeat("0", 64)}, exitFailure, "not a digest"},
		{[]string{"tag", "nope:1", "x:2"}, exitNotFound, "image not found: nope:1"},
		{[]string{"tag", "nope:1", "Bad Name"}, exitFailure, "invalid reference format"},
		{[]string{"logout", reg}, exitFailure, "not logged in"},
		{[]string{"login", "-u", "x", "-p", "y", closed}, exitFailure, "registry unreachable"},
	}
	for _, tc := range cases {
		code, _, errOut := cli(t, root, tc.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		oneLine := tc.code == exitUsage || strings.Count(errOut, "\n") == 1
		if code != tc.code || !strings.Contains(first, tc.err) || !oneLine {
			t.Errorf("crun-lite %v: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "images.json")); err == nil {
		if code, out, _ := cli(t, root, "images", "--ids"); code != 0 || out != "" {
			t.Errorf("failed pulls left images: %q", out)
		}
	}
}

// TestPullRootless: an unprivileged user pulls an image with files of
// other owners into their own store; the pull goes through the same user
// namespace as a rootless import, so the layer keeps the owners (as
// subordinate ids) and a rootless container shows the image's. import -
// works for the user too.
func TestPullRootless(t *testing.T) {
	needContainers(t)
	cred, home, subStart := testUser(t)
	if subStart < 0 {
		t.Skip("the test user got no /etc/subuid range")
	}
	fuseMode(t, 0o666)
	e := &env{t: t, store: filepath.Join(home, "store"), cred: cred, home: home}
	t.Cleanup(e.cleanup)
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{})
	img, err := imagetest.BusyboxSpec()
	if err != nil {
		t.Fatal(err)
	}
	img.Names = []string{"owned:1"}
	img.Layers[0].Entries = append(img.Layers[0].Entries, imagetest.File("owned", "owned\n", 0o640).WithOwner(123, 456))
	archive := filepath.Join(t.TempDir(), "owned.tar")
	if err := imagetest.WriteDockerArchive(archive, img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("skopeo", "copy", "-q", "--dest-tls-verify=false", "docker-archive:"+archive, "docker://"+reg+"/owned:1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo: %v %s", err, out)
	}

	e.mustRun("pull", reg+"/owned:1")
	matches, _ := filepath.Glob(filepath.Join(e.store, "layers", "*", "diff", "owned"))
	var st syscall.Stat_t
	if len(matches) != 1 || syscall.Lstat(matches[0], &st) != nil || st.Uid != uint32(subStart+122) {
		t.Errorf("pulled layer's /owned: %v uid %d, want uid %d (image uid 123 through the subordinate range)", matches, st.Uid, subStart+122)
	}
	if got := e.mustRun("run", "--rm", "--rootless", reg+"/owned:1", "stat", "-c", "%u:%g", "/owned"); got != "123:456\n" {
		t.Errorf("rootless container of the pulled image shows %q, want 123:456", got)
	}

	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.cmd(ctx, "import", "-", "--name", "piped:2")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "piped:2") {
		t.Errorf("rootless import -: %v %s", err, out)
	}
}

// TestLoginPasswordStdin: echo PASS | crun-lite login --password-stdin, as
// scripts log in; then a pull of a private image works, and after logout it
// is refused.
func TestLoginPasswordStdin(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{Htpasswd: "bob:" + string(hash) + "\n"})
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	store := filepath.Join(dir, "store")
	crun := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(crunBin, append([]string{"--root", store}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir, "REGISTRY_AUTH_FILE=" + authFile}
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := exec.Command("skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bob:pw",
		"docker-archive:"+busyboxArchive(t), "docker://"+reg+"/private/bb:1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo: %v %s", err, out)
	}
	if out, err := crun("", "pull", reg+"/private/bb:1"); err == nil || !strings.Contains(out, "access denied") {
		t.Errorf("pull before login: %v %q", err, out)
	}
	if out, err := crun("nope\n", "login", "-u", "bob", "--password-stdin", reg); err == nil || !strings.Contains(out, "invalid username or password") {
		t.Errorf("login with a wrong password: %v %q", err, out)
	}
	if out, err := crun("pw\n", "login", "-u", "bob", "--password-stdin", reg); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %v %q", err, out)
	}
	if out, err := crun("", "pull", reg+"/private/bb:1"); err != nil {
		t.Errorf("pull after login: %v %q", err, out)
	}
	if out, err := crun("", "logout", reg); err != nil {
		t.Errorf("logout: %v %q", err, out)
	}
	if data, _ := os.ReadFile(authFile); strings.Contains(string(data), reg) {
		t.Errorf("logout left the registry in %s: %s", authFile, data)
	}

	// Credentials podman stored are found too (the same auth.json).
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed")
	}
	podman := exec.Command("podman", "--root", filepath.Join(dir, "proot"), "--runroot", filepath.Join(dir, "prun"),
		"login", "--tls-verify=false", "--authfile", authFile, "-u", "bob", "--password-stdin", reg)
	podman.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir, "CONTAINERS_CONF=" + filepath.Join(dir, "none.conf")}
	podman.Stdin = strings.NewReader("pw\n")
	os.WriteFile(filepath.Join(dir, "none.conf"), nil, 0o644)
	if out, err := podman.CombinedOutput(); err != nil {
		t.Fatalf("podman login: %v %s", err, out)
	}
	os.RemoveAll(store)
	if out, err := crun("", "pull", reg+"/private/bb:1"); err != nil {
		t.Errorf("pull with podman's credentials: %v %q", err, out)
	}
}

// busyboxArchive is the busybox test image, or a skip without busybox-static.
func busyboxArchive(t *testing.T) string {
	t.Helper()
	if busyboxTar == "" {
		t.Skip("busybox-static is not installed")
	}
	return busyboxTar
}
