package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, c := range []struct {
		info debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "1.4.0"},
		{debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261205130000-0123456789ab"}}, "0.0.0-20261205130000-0123456789ab"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "fe32b9412345678901234567890abcdef0123456"}, {Key: "vcs.modified", Value: "false"}}}, "dev+fe32b9412345"},
		{debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "fe32b9412345678901234567890abcdef0123456"}, {Key: "vcs.modified", Value: "true"}}}, "dev+fe32b9412345-dirty"},
	} {
		if got := fromBuildInfo(&c.info); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.info, got, c.want)
		}
	}
}

// TestBinaryVersion builds unionfsd as a user would, from this checkout
// and with a packager's -X, and checks what --version says.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "unionfsd")
	build := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), "./cmd/unionfsd")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("unionfsd --version: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// -buildvcs=true: this machine's go env may turn stamping off.
	got := build("-buildvcs=true")
	if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
		head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		// Go 1.24+ stamps a pseudo-version (0.0.0-DATE-COMMIT[+dirty]); older
		// ones only the vcs settings (dev+COMMIT).
		switch {
		case got == "unionfsd dev":
			// The toolchain stamped nothing (as in a git worktree here):
			// nothing to check; TestFromBuildInfo covers the rules.
			t.Logf("no VCS information stamped into the build: %q", got)
		case err == nil && !strings.Contains(got, string(head[:12])):
			t.Errorf("--version from a git checkout at %s: %q", head[:12], got)
		}
	}
	if got := build("-ldflags", "-X github.com/unionfsd/unionfsd/internal/version.Override=9.8.7"); got != "unionfsd 9.8.7" {
		t.Errorf("--version with -X Override=9.8.7: %q", got)
	}
}
