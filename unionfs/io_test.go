package unionfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReaderThenWriter opens a lower file for reading (the kernel may do
// its I/O on the lower file by passthrough), then for writing. The write
// must go to a copy in the upper, never to the lower file, and new opens
// must see the new data.
func TestReaderThenWriter(t *testing.T) {
	for _, pt := range []bool{true, false} {
		name := map[bool]string{true: "passthrough", false: "no-passthrough"}[pt]
		t.Run(name, func(t *testing.T) {
			tu := newLayers(t, 1)
			writeFile(t, tu.lowers[0]+"/f", "lower data")
			tu.mount(t, func(c *Config) { c.Passthrough = pt })
			r, err := os.Open(tu.m("f"))
			must(t, err)
			defer r.Close()
			buf := make([]byte, 5)
			_, err = r.ReadAt(buf, 0)
			must(t, err)
			w, err := os.OpenFile(tu.m("f"), os.O_RDWR, 0)
			must(t, err)
			_, err = w.WriteAt([]byte("UPPER"), 0)
			must(t, err)
			must(t, w.Close())
			lower, _ := os.ReadFile(tu.lowers[0] + "/f")
			upper, _ := os.ReadFile(tu.upper + "/f")
			merged, _ := os.ReadFile(tu.m("f"))
			if string(lower) != "lower data" || string(upper) != "UPPER data" || string(merged) != "UPPER data" {
				t.Errorf("lower %q upper %q merged %q", lower, upper, merged)
			}
		})
	}
}

func TestAppendAndFallocate(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "12345")
	tu.mount(t, nil)
	f, err := os.OpenFile(tu.m("f"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString("678")
	must(t, err)
	must(t, unix.Fallocate(int(f.Fd()), 0, 0, 1<<20))
	must(t, f.Close())
	st, err := os.Stat(tu.m("f"))
	must(t, err)
	if st.Size() != 1<<20 {
		t.Errorf("size after fallocate %d, want %d", st.Size(), 1<<20)
	}
	b, err := os.ReadFile(tu.m("f"))
	must(t, err)
	if string(b[:8]) != "12345678" {
		t.Errorf("content %q", b[:8])
	}
}

func TestHardlinkCount(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "x")
	tu.mount(t, nil)
	must(t, os.Link(tu.m("f"), tu.m("g")))
	var a, b syscall.Stat_t
	must(t, syscall.Stat(tu.m("f"), &a))
	must(t, syscall.Stat(tu.m("g"), &b))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("links: ino %d vs %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	must(t, os.WriteFile(tu.m("g"), []byte("through g"), 0o644))
	got, _ := os.ReadFile(tu.m("f"))
	if string(got) != "through g" {
		t.Errorf("f reads %q after writing g", got)
	}
}

// TestPermissionsForOtherUsers runs commands as nobody: the kernel applies
// the mode bits we report (default_permissions), and allow_other lets the
// user in at all.
func TestPermissionsForOtherUsers(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/public", "p")
	writeFile(t, tu.lowers[0]+"/secret", "s")
	must(t, os.Chmod(tu.lowers[0]+"/secret", 0o600))
	must(t, os.Chmod(tu.lowers[0], 0o755))
	openToAll(t, tu.mnt)
	tu.mount(t, func(c *Config) { c.AllowOther = true })
	asNobody := func(script string) (string, error) {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := asNobody("cat " + tu.m("public")); err != nil || out != "p" {
		t.Errorf("nobody reading a 0644 file: %q %v", out, err)
	}
	if out, err := asNobody("cat " + tu.m("secret")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody read a 0600 root file: %q %v", out, err)
	}
	if out, err := asNobody("touch " + tu.m("new")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody created a file in a root 0755 dir: %q %v", out, err)
	}
}

// TestNewFileOwner checks that files made through the mount belong to the
// caller, and that a setgid dir passes its group on.
func TestNewFileOwner(t *testing.T) {
	tu := newLayers(t, 1)
	mkdirAll(t, tu.lowers[0]+"/shared")
	must(t, os.Chown(tu.lowers[0]+"/shared", 0, 4321))
	must(t, syscall.Chmod(tu.lowers[0]+"/shared", 0o2777))
	openToAll(t, tu.mnt)
	tu.mount(t, func(c *Config) { c.AllowOther = true })
	cmd := exec.Command("sh", "-c", "touch "+tu.m("shared/f")+" && mkdir "+tu.m("shared/d"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1500, Gid: 1600}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var f, d syscall.Stat_t
	must(t, syscall.Lstat(tu.upper+"/shared/f", &f))
	must(t, syscall.Lstat(tu.upper+"/shared/d", &d))
	if f.Uid != 1500 || f.Gid != 4321 {
		t.Errorf("file owner %d:%d, want 1500:4321", f.Uid, f.Gid)
	}
	if d.Uid != 1500 || d.Gid != 4321 || d.Mode&syscall.S_ISGID == 0 {
		t.Errorf("dir owner %d:%d mode %o, want 1500:4321 with setgid", d.Uid, d.Gid, d.Mode)
	}
}

// openToAll makes path and its temp-dir parents searchable by everyone, so a
// test can act as another user (t.TempDir is 0700).
func openToAll(t *testing.T, path string) {
	t.Helper()
	for p := path; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		must(t, os.Chmod(p, 0o755))
	}
}
