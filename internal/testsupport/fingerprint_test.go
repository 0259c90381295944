package testsupport

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFingerprintSeesChanges: every kind of change a lower-layer test
// guards against changes the fingerprint; reading does not.
func TestFingerprintSeesChanges(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "d", "f")
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Unix(1_000_000_000, 0)
	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"content of the same size", func() error { return os.WriteFile(f, []byte("abd"), 0o644) }},
		{"mode", func() error { return os.Chmod(f, 0o600) }},
		{"mtime", func() error { return os.Chtimes(f, past, past) }},
		{"owner", func() error { return os.Lchown(f, 12345, 12345) }},
		{"xattr", func() error { return unix.Lsetxattr(f, "user.test", []byte("v"), 0) }},
		{"new entry", func() error { return os.Symlink("f", filepath.Join(dir, "d", "l")) }},
		{"symlink target", func() error {
			os.Remove(filepath.Join(dir, "d", "l"))
			return os.Symlink("g", filepath.Join(dir, "d", "l"))
		}},
	} {
		before := Fingerprint(t, dir)
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
		if Fingerprint(t, dir) != before {
			t.Fatalf("reading %s changed the fingerprint", f)
		}
		err := change.do()
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			t.Logf("%s: not possible here: %v", change.what, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if Fingerprint(t, dir) == before {
			t.Errorf("a change of %s left the fingerprint as it was", change.what)
		}
	}
}
