package inspect

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"/":              "-",
		"/mnt/merged":    "mnt-merged",
		"/mnt/my-dir":    `mnt-my\x2ddir`,
		"/a b/.hidden":   `a\x20b-\x2ehidden`,
		"/srv/x.y/z_1:2": "srv-x.y-z_1:2",
	} {
		if got := escapePath(in); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRecordLifecycle: a record is found while its mount lives, by the
// mountpoint, by a path inside it and by its upper; it goes stale when the
// mount goes, and its remover deletes it.
func TestRecordLifecycle(t *testing.T) {
	t.Setenv(RecordDirEnv, t.TempDir())
	u := newUnion(t, 1)
	unmount := u.mountUnionfsd(t)
	remove, err := SaveRecord(Record{Mountpoint: u.mnt, Upper: u.upper, Work: u.work, Lowers: u.lowers, PID: os.Getpid()})
	must(t, err)

	r, err := LoadRecord(u.mnt)
	must(t, err)
	if r.Upper != u.upper || len(r.Lowers) != 1 || r.Lowers[0] != u.lowers[0] {
		t.Errorf("record %+v", r)
	}
	cfg, mnt, inner, err := FindMount(u.mnt + "/no/such/file")
	must(t, err)
	if mnt != u.mnt || inner != "/no/such/file" || cfg.Upper != u.upper {
		t.Errorf("FindMount: %q %q %+v", mnt, inner, cfg)
	}
	must(t, os.Symlink("target", u.upper+"/ln"))
	if _, _, inner, err := FindMount(u.mnt + "/ln"); err != nil || inner != "/ln" {
		t.Errorf("FindMount of a symlink in the union: %q, %v; want the link itself", inner, err)
	}
	if r, ok := RecordContaining(u.mnt + "/a/b"); !ok || r.Mountpoint != u.mnt {
		t.Errorf("RecordContaining: %+v %v", r, ok)
	}
	if who, busy := UpperInUse(u.upper); !busy || !strings.Contains(who, u.mnt) {
		t.Errorf("UpperInUse = %q, %v", who, busy)
	}

	unmount()
	if _, err := LoadRecord(u.mnt); !errors.Is(err, ErrNoRecord) || !strings.Contains(err.Error(), "stale") {
		t.Errorf("after unmount: %v, want a stale-record error", err)
	}
	if _, _, _, err := FindMount(u.mnt + "/x"); !errors.Is(err, ErrNoRecord) {
		t.Errorf("FindMount after unmount: %v", err)
	}
	remove()
	if ents, _ := os.ReadDir(RecordDir()); len(ents) != 0 {
		t.Errorf("record dir after remove: %v", ents)
	}
}

// TestFindMountOverlay reads the layers of a kernel overlay mount from its
// mount options.
func TestFindMountOverlay(t *testing.T) {
	t.Setenv(RecordDirEnv, t.TempDir())
	u := newUnion(t, 2)
	u.mountOverlay(t)
	cfg, mnt, inner, err := FindMount(filepath.Join(u.mnt, "etc"))
	must(t, err)
	if mnt != u.mnt || inner != "/etc" || cfg.Upper != u.upper || strings.Join(cfg.Lowers, ":") != strings.Join(u.lowers, ":") {
		t.Errorf("FindMount: %q %q %+v", mnt, inner, cfg)
	}
	if who, busy := UpperInUse(u.upper); !busy || !strings.Contains(who, "overlay") {
		t.Errorf("UpperInUse = %q, %v", who, busy)
	}
}

// TestMountAt finds the topmost of two stacked mounts on a dir whose name
// mountinfo escapes, the one below once the top one is gone, and nothing
// after that.
func TestMountAt(t *testing.T) {
	testsupport.RequireFUSE(t)
	dir := filepath.Join(t.TempDir(), "with space")
	must(t, os.Mkdir(dir, 0o755))
	for _, src := range []string{"inspect-below", "inspect-top"} {
		if err := unix.Mount(src, dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", dir, err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	for _, want := range []string{"inspect-top", "inspect-below"} {
		m, ok := MountAt(dir)
		if !ok || m.Point != dir || m.FSType != "tmpfs" || m.Source != want {
			t.Fatalf("MountAt(%q) = %+v, %v; want the tmpfs %s", dir, m, ok, want)
		}
		must(t, unix.Unmount(dir, 0))
	}
	if m, ok := MountAt(dir); ok {
		t.Errorf("MountAt(%q) after unmounting both = %+v", dir, m)
	}
}

// recordHelperEnv makes the test binary act as a daemon saving a record
// (TestSaveRecordHelper); the tests run it as another user.
const recordHelperEnv = "UNIONFSD_TEST_SAVE_RECORD"

// TestSaveRecordHelper is not a test: run by TestRecordDirTakenByOther as
// an unprivileged user, it saves a record and prints the error, if any.
func TestSaveRecordHelper(t *testing.T) {
	if os.Getenv(recordHelperEnv) == "" {
		t.Skip("helper process only")
	}
	if _, err := SaveRecord(Record{Mountpoint: "/mnt/x", Lowers: []string{"/l"}, PID: os.Getpid()}); err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		return
	}
	os.Stdout.WriteString("OK\n")
}

// TestRecordDirTakenByOther: with no XDG_RUNTIME_DIR, an unprivileged
// daemon records its mount in TMPDIR/unionfsd-UID. Another user who made
// that name first (a dir of theirs, or a symlink to one) must not receive
// the record; a dir with a loose mode is refused too. Without anything in
// the way the dir is made with mode 0700.
func TestRecordDirTakenByOther(t *testing.T) {
	testsupport.RequireFUSE(t) // root: to act as two users
	const victim, attacker = 65534, 1000
	bin := copyTestBinary(t)
	cases := []struct {
		name    string
		prepare func(t *testing.T, p string)
		want    string // "" for success
	}{
		{"free", func(t *testing.T, p string) {}, ""},
		{"other's dir", func(t *testing.T, p string) {
			must(t, os.Mkdir(p, 0o777))
			must(t, os.Chmod(p, 0o777))
			must(t, os.Chown(p, attacker, attacker))
		}, "owned by uid 1000"},
		{"symlink to other's dir", func(t *testing.T, p string) {
			must(t, os.Mkdir(p+".target", 0o777))
			must(t, os.Chmod(p+".target", 0o777))
			must(t, os.Chown(p+".target", attacker, attacker))
			must(t, os.Symlink(p+".target", p))
			must(t, os.Lchown(p, attacker, attacker))
		}, "not a directory"},
		{"symlink to own dir", func(t *testing.T, p string) {
			must(t, os.Mkdir(p+".target", 0o700))
			must(t, os.Chown(p+".target", victim, victim))
			must(t, os.Symlink(p+".target", p))
			must(t, os.Lchown(p, attacker, attacker))
		}, "not a directory"},
		{"own dir, loose mode", func(t *testing.T, p string) {
			must(t, os.Mkdir(p, 0o755))
			must(t, os.Chown(p, victim, victim))
		}, "want 0700"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := sharedTempDir(t)
			must(t, os.Chmod(tmp, 0o1777))
			p := filepath.Join(tmp, "unionfsd-65534")
			c.prepare(t, p)
			cmd := exec.Command(bin, "-test.run=^TestSaveRecordHelper$", "-test.count=1")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, recordHelperEnv + "=1"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: victim, Gid: victim}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v: %s", err, out)
			}
			got := string(out)
			if c.want == "" {
				var st unix.Stat_t
				must(t, unix.Lstat(p, &st))
				if !strings.Contains(got, "OK") || st.Uid != victim || st.Mode&0o7777 != 0o700 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Fatalf("helper said %q; record dir uid %d mode %o, want OK, uid %d, a dir with mode 0700", got, st.Uid, st.Mode, victim)
				}
				return
			}
			if !strings.Contains(got, "ERR mount record dir "+p+": ") || !strings.Contains(got, c.want) {
				t.Errorf("helper said %q, want a refusal naming %s and saying %q", got, p, c.want)
			}
			for _, d := range []string{p, p + ".target"} {
				if ents, _ := os.ReadDir(d); len(ents) != 0 {
					t.Errorf("%s got entries %v: a record was written into a dir we do not own", d, ents)
				}
			}
		})
	}
}

// copyTestBinary copies the test binary where other users can run it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/exe")
	must(t, err)
	dir := sharedTempDir(t)
	bin := filepath.Join(dir, "inspect.test")
	must(t, os.WriteFile(bin, data, 0o755))
	return bin
}

// sharedTempDir makes a dir that other users can reach (t.TempDir's parent
// is private).
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "unionfsd-inspect-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	return dir
}
