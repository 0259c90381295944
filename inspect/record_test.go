package inspect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	requireMounts(t)
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

func TestUnescapeOctal(t *testing.T) {
	cases := map[string]string{
		`/plain`:         "/plain",
		`/a\040b`:        "/a b",
		`/t\011x\012y`:   "/t\tx\ny",
		`/back\134slash`: `/back\slash`,
		`/short\04`:      `/short\04`,
	}
	for in, want := range cases {
		if got := UnescapeOctal(in); got != want {
			t.Errorf("UnescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}
