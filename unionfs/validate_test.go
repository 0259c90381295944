package unionfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mkdirs creates each dir below base and returns their paths.
func mkdirs(t *testing.T, base string, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p := filepath.Join(base, n)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestValidateDefaultsWorkInsideUpper(t *testing.T) {
	d := mkdirs(t, t.TempDir(), "l1", "l2", "up")
	c := Config{Lowers: []string{d[0], d[1]}, Upper: d[2]}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(d[2], DefaultWorkName)
	if c.Work != want {
		t.Fatalf("Work = %q, want %q", c.Work, want)
	}
	fi, err := os.Stat(want)
	if err != nil {
		t.Fatalf("workdir not created: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("workdir mode = %v, want drwx------", fi.Mode())
	}
	// A second Validate on the result must pass and change nothing.
	before := c
	if err := c.Validate(); err != nil {
		t.Fatalf("second Validate: %v", err)
	}
	if c.Work != before.Work || c.Upper != before.Upper || c.Lowers[0] != before.Lowers[0] {
		t.Fatalf("second Validate changed the config: %+v -> %+v", before, c)
	}
}

func TestValidateMakesPathsAbsoluteAndReal(t *testing.T) {
	base := t.TempDir()
	d := mkdirs(t, base, "lower", "upper", "work")
	if err := os.Symlink(d[0], filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(base)
	c := Config{Lowers: []string{"link"}, Upper: "upper", Work: "./work"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	real := func(p string) string {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if c.Lowers[0] != real(d[0]) || c.Upper != real(d[1]) || c.Work != real(d[2]) {
		t.Fatalf("paths not absolute and resolved: %+v", c)
	}
}

func TestValidateCreatesGivenWorkdir(t *testing.T) {
	base := t.TempDir()
	d := mkdirs(t, base, "lower", "upper")
	work := filepath.Join(base, "work")
	c := Config{Lowers: d[:1], Upper: d[1], Work: work}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(work); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("workdir %s: %v %v, want a 0700 dir", work, fi.Mode(), err)
	}
}

func TestValidateReadOnlyUnion(t *testing.T) {
	d := mkdirs(t, t.TempDir(), "a", "b")
	c := Config{Lowers: d}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Work != "" {
		t.Fatalf("read-only union got a workdir %q", c.Work)
	}
}

// TestValidateRejects checks each bad config gives an error that names the
// offending path and its cause, and creates no workdir anywhere.
func TestValidateRejects(t *testing.T) {
	type tc struct {
		name  string
		cfg   func(base string) Config
		path  string // relative to base; the error must name it
		cause string
	}
	cases := []tc{
		{"no layers", func(b string) Config { return Config{} }, "", "no layers"},
		{"missing lower", func(b string) Config {
			return Config{Lowers: []string{b + "/nope"}, Upper: b + "/up"}
		}, "nope", "no such file or directory"},
		{"lower is a file", func(b string) Config {
			return Config{Lowers: []string{b + "/file"}}
		}, "file", "not a directory"},
		{"missing upper", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/nope"}
		}, "nope", "no such file or directory"},
		{"upper is a file", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/file"}
		}, "file", "not a directory"},
		{"upper inside lower", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/lo/sub"}
		}, "lo/sub", "inside lower dir"},
		{"lower inside upper", func(b string) Config {
			return Config{Lowers: []string{b + "/up/sub"}, Upper: b + "/up"}
		}, "up/sub", "inside upper dir"},
		{"upper is a lower", func(b string) Config {
			return Config{Lowers: []string{b + "/lo", b + "/up"}, Upper: b + "/up"}
		}, "up", "also a lower dir"},
		{"work without upper", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Work: b + "/work"}
		}, "work", "without an upper"},
		{"work is upper", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/up", Work: b + "/up"}
		}, "up", "workdir is the upper dir"},
		{"work visible inside upper", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/up", Work: b + "/up/work"}
		}, "up/work", "would show in the union"},
		{"work contains upper", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/up/sub", Work: b + "/up"}
		}, "up", "contains upper dir"},
		{"work inside lower", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/up", Work: b + "/lo/work"}
		}, "lo/work", "overlaps lower dir"},
		{"work parent missing", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/up", Work: b + "/x/y"}
		}, "x/y", "no such file or directory"},
		{"work is a file", func(b string) Config {
			return Config{Lowers: []string{b + "/lo"}, Upper: b + "/up", Work: b + "/file"}
		}, "file", "not a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			mkdirs(t, base, "lo", "lo/sub", "up", "up/sub")
			if err := os.WriteFile(base+"/file", nil, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := c.cfg(base)
			err = cfg.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error", cfg)
			}
			msg := err.Error()
			if c.path != "" && !strings.HasPrefix(msg, filepath.Join(base, c.path)+": ") {
				t.Errorf("error %q does not start with the path %s", msg, c.path)
			}
			if !strings.Contains(msg, c.cause) {
				t.Errorf("error %q does not say %q", msg, c.cause)
			}
			assertNoWorkdirCreated(t, base)
		})
	}
}

// assertNoWorkdirCreated fails if a rejected config left a dir behind.
func assertNoWorkdirCreated(t *testing.T, base string) {
	t.Helper()
	for _, p := range []string{"up/" + DefaultWorkName, "work", "lo/work", "up/work"} {
		if _, err := os.Lstat(filepath.Join(base, p)); err == nil {
			t.Errorf("rejected config created %s", p)
		}
	}
}

func TestValidateMissingIsErrNotExist(t *testing.T) {
	c := Config{Lowers: []string{filepath.Join(t.TempDir(), "nope")}}
	if err := c.Validate(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Validate = %v, want an error wrapping ErrNotExist", err)
	}
}

// mountOrSkip mounts and registers the unmount; it skips when mounting is not
// allowed (the tests using it need root, as the rest of this package does).
func mountOrSkip(t *testing.T, src, dir, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(src, dir, fstype, flags, data); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mount %s: %v: run the tests as root", dir, err)
		}
		t.Fatalf("mount %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
}

func TestValidateUpperNotWritable(t *testing.T) {
	d := mkdirs(t, t.TempDir(), "lo", "up")
	// A read-only bind mount: even root cannot write there.
	mountOrSkip(t, d[1], d[1], "", unix.MS_BIND, "")
	if err := unix.Mount("", d[1], "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", d[1], err)
	}
	c := Config{Lowers: d[:1], Upper: d[1]}
	err := c.Validate()
	if !errors.Is(err, unix.EROFS) || !strings.Contains(err.Error(), d[1]+": upper dir: not writable") {
		t.Fatalf("Validate = %v, want %s: upper dir: not writable: read-only file system", err, d[1])
	}
}

func TestValidateWorkOnOtherFilesystem(t *testing.T) {
	d := mkdirs(t, t.TempDir(), "lo", "up", "other")
	mountOrSkip(t, "tmpfs", d[2], "tmpfs", 0, "mode=0755")
	c := Config{Lowers: d[:1], Upper: d[1], Work: d[2] + "/work"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "another filesystem than upper dir "+d[1]) {
		t.Fatalf("Validate = %v, want a workdir-on-another-filesystem error", err)
	}
	if _, err := os.Lstat(d[2] + "/work"); err == nil {
		t.Fatal("rejected workdir was created")
	}
}

// TestValidateIDMaps checks the id map rules: one error naming the option
// (as uidmapping=/gidmapping= spell it) and the cause, nothing created.
func TestValidateIDMaps(t *testing.T) {
	m := func(stored, shown, size uint32) IDMap { return IDMap{HostID: stored, ContainerID: shown, Size: size} }
	cases := []struct {
		name     string
		uid, gid []IDMap
		says     string // "" means valid
	}{
		{"podman-style map", []IDMap{m(0, 100000, 65536)}, []IDMap{m(0, 100000, 65536)}, ""},
		{"several ranges", []IDMap{m(0, 1000, 1), m(1, 100000, 65536)}, nil, ""},
		{"whole id space", []IDMap{m(0, 0, maxID+1)}, nil, ""},
		{"zero size", []IDMap{m(0, 1000, 0)}, nil, "uidmapping=0:1000:0: range 0:1000:0 has size 0"},
		{"stored ids overlap", []IDMap{m(0, 1000, 10), m(5, 2000, 10)}, nil,
			"uidmapping=0:1000:10:5:2000:10: ranges 0:1000:10 and 5:2000:10 overlap: stored ids 5-9 are in both"},
		{"shown ids overlap", nil, []IDMap{m(0, 1000, 10), m(100, 1009, 1)},
			"gidmapping=0:1000:10:100:1009:1: ranges 0:1000:10 and 100:1009:1 overlap: shown ids 1009-1009"},
		{"stored ids overflow", []IDMap{m(maxID, 0, 2)}, nil, "stored ids would run to 4294967295, past the highest id"},
		{"shown ids overflow", nil, []IDMap{m(0, 4294967290, 100)}, "gidmapping=0:4294967290:100: range 0:4294967290:100: shown ids"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			d := mkdirs(t, base, "lo", "up")
			cfg := Config{Lowers: []string{d[0]}, Upper: d[1], UIDMap: c.uid, GIDMap: c.gid}
			err = cfg.Validate()
			if c.says == "" {
				if err != nil && strings.Contains(err.Error(), "not mapped in this user namespace") {
					t.Skipf("the test's user namespace is too small: %v", err)
				}
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Validate = %v, want an error saying %q", err, c.says)
			}
			assertNoWorkdirCreated(t, base)
		})
	}
}

// TestIDsInNamespace checks maps against uid_map files of the shape rootless
// podman's user namespace has: the user's own id, then a subordinate range.
func TestIDsInNamespace(t *testing.T) {
	nsFile := filepath.Join(t.TempDir(), "uid_map")
	ns := "         0       1000          1\n         1     100000      65536\n"
	if err := os.WriteFile(nsFile, []byte(ns), 0o644); err != nil {
		t.Fatal(err)
	}
	m := func(stored, shown, size uint32) IDMap { return IDMap{HostID: stored, ContainerID: shown, Size: size} }
	cases := []struct {
		maps []IDMap
		says string
	}{
		{[]IDMap{m(0, 1, 65536)}, ""},                  // a container map inside the namespace
		{[]IDMap{m(0, 0, 1), m(1, 1, 65536)}, ""},      // spans both namespace lines
		{[]IDMap{m(0, 1, 65537)}, "shown id 65537"},    // one id too many
		{[]IDMap{m(65530, 0, 10)}, "stored id 65537"},  // stored side outside
		{[]IDMap{m(0, 100000, 10)}, "shown id 100000"}, // host ids seen from outside
	}
	for _, c := range cases {
		err := checkIDsInNamespace(c.maps, nsFile)
		switch {
		case c.says == "" && err != nil:
			t.Errorf("%s: %v", formatIDMaps(c.maps), err)
		case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says) ||
			!strings.Contains(err.Error(), "not mapped in this user namespace ("+nsFile+")")):
			t.Errorf("%s: error %v, want it to say %q", formatIDMaps(c.maps), err, c.says)
		}
	}
	if err := os.WriteFile(nsFile, []byte("0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkIDsInNamespace([]IDMap{m(0, 0, 1)}, nsFile); err == nil || !strings.Contains(err.Error(), "unexpected line") {
		t.Errorf("broken uid_map: %v", err)
	}
}
