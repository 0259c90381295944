package difftest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/unionfs"
)

// TestSeedWalkthrough is the walk-through, `unionfsd B:A C`: A is
// the lower layer, B the writable upper (no workdir given, so unionfsd keeps
// it inside B), C the mount.
//   - deleting a lower file in C leaves a ".wh." file in B and A untouched
//     (A's fingerprint, contents, times and xattrs, is the same before and
//     after);
//   - editing a lower file directly in A after mounting shows in C within
//     3x the short cache timeout (at once with watching), even when C had
//     it cached;
//   - a file added directly to A shows in C as fast, even after C looked it
//     up and cached "no such file".
func TestSeedWalkthrough(t *testing.T) {
	needMounts(t)
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "A"), filepath.Join(dir, "B"), filepath.Join(dir, "C")
	must(t, Build(a, Layer{
		{Path: "keep", Type: EFile, Mode: 0o644, Data: "keep\n"},
		{Path: "del", Type: EFile, Mode: 0o644, Data: "delete me\n", Xattrs: map[string]string{"user.x": "1"}},
		{Path: "edit", Type: EFile, Mode: 0o644, Data: "old\n"},
		{Path: "sub", Type: EDir, Mode: 0o755},
		{Path: "sub/inner", Type: EFile, Mode: 0o600, Data: "inner\n"},
	}, OverlayFormat))
	must(t, Build(b, Layer{{Path: "fromB", Type: EFile, Mode: 0o644, Data: "b\n"}}, OverlayFormat))
	must(t, os.Mkdir(c, 0o755))
	before, err := Fingerprint(a)
	must(t, err)

	cfg := unionfs.DefaultConfig()
	cfg.Lowers = []string{a}
	cfg.Upper = b
	unmount, err := MountUnionfsd(c, cfg)
	must(t, err)
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Error(err)
		}
	})

	wantNames(t, c, "del edit fromB keep sub")
	if err := os.Remove(filepath.Join(c, "del")); err != nil {
		t.Fatalf("rm C/del: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(c, "del")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("C/del after rm: got %v, want ENOENT", err)
	}
	wantNames(t, c, "edit fromB keep sub")
	wantOCIWhiteout(t, filepath.Join(b, ".wh.del"))
	wantUpperNames(t, b, ".wh.del fromB")
	after, err := Fingerprint(a)
	must(t, err)
	if lines := diffLines(before, after); len(lines) > 0 {
		t.Errorf("lower layer A changed:\n%s", strings.Join(lines, "\n"))
	}

	edit := filepath.Join(c, "edit")
	wantContent(t, edit, "old\n") // now cached by the kernel
	// Another process edits A: the daemon serves from this one, and its
	// watch ignores its own process's changes (the kernel knows those).
	writeFromChild(t, filepath.Join(a, "edit"), "edited in A, longer\n")
	pollContent(t, edit, "edited in A, longer\n", 3*unionfs.ShortTimeout)

	added := filepath.Join(c, "added")
	if _, err := os.Lstat(added); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("C/added before it exists: %v", err)
	}
	writeFromChild(t, filepath.Join(a, "added"), "new in A\n")
	pollContent(t, added, "new in A\n", 3*unionfs.ShortTimeout)
	wantUpperNames(t, b, ".wh.del fromB") // reading copied nothing up
}

// writeFromChild writes data to path from a child process.
func writeFromChild(t *testing.T, path, data string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `printf %s "$1" >"$2"`, "sh", data, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s: %v: %s", path, err, out)
	}
}

func names(t *testing.T, dir string, skip func(string) bool) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range ents {
		if skip == nil || !skip(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func wantNames(t *testing.T, dir, want string) {
	t.Helper()
	if got := names(t, dir, nil); got != want {
		t.Errorf("ls %s: got %q, want %q", dir, got, want)
	}
}

// wantUpperNames checks the upper's top level, unionfsd's workdir aside.
func wantUpperNames(t *testing.T, upper, want string) {
	t.Helper()
	got := names(t, upper, func(n string) bool { return n == unionfsdWorkName })
	if got != want {
		t.Errorf("ls %s (upper): got %q, want %q", upper, got, want)
	}
}

func wantOCIWhiteout(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("whiteout %s: %v", p, err)
		return
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("whiteout %s is %v, want a regular file (OCI whiteout)", p, fi.Mode())
	}
}

func wantContent(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != want {
		t.Errorf("read %s: got %q, %v; want %q", p, got, err, want)
	}
}

// pollContent waits up to limit for p to read as want.
func pollContent(t *testing.T, p, want string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		got, err := os.ReadFile(p)
		if err == nil && string(got) == want {
			t.Logf("%s showed the change after %v", p, time.Since(start).Round(10*time.Millisecond))
			return
		}
		if time.Since(start) > limit {
			t.Errorf("read %s: still %q, %v after %v; want %q", p, got, err, limit, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
