package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestWatchFallbackMessage mounts where the layers cannot be watched: in a
// user namespace (no fanotify filesystem marks without CAP_SYS_ADMIN in the
// initial one) whose inotify watch limit is 0. The mount works, with short
// cache timeouts, and the command says so in one line on stderr; with
// watch=off, or as root where fanotify works, it says nothing.
func TestWatchFallbackMessage(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) missing")
	}
	limit0 := []string{"unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
		`echo 0 >/proc/sys/user/max_inotify_watches && exec "$@"`, "sh"}
	cases := []struct {
		name  string
		wrap  []string
		watch string
		want  []string // in the one stderr line; nil: no output at all
	}{
		// auto without fanotify keeps the short timeouts silently, as
		// before watching existed: inotify cannot tell our own changes.
		{"no fanotify", limit0, "auto", nil},
		{"inotify only", limit0, "inotify", []string{"watch=inotify: not watching", "/up (inotify: no space left on device"}},
		{"off", limit0, "off", nil},
		{"root", nil, "auto", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			opts := "lowerdir=" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work + ",watch=" + c.watch
			r := runCLI(t, runOpts{wrap: c.wrap}, "-o", opts, b.mnt)
			// The daemon serves on (in its own mount namespace when
			// wrapped); stop it before the layout goes.
			t.Cleanup(func() {
				for _, pid := range daemonsFor(b.mnt) {
					syscall.Kill(pid, syscall.SIGTERM)
					if !waitGone(pid, 10e9) {
						t.Errorf("daemon %d did not stop", pid)
					}
				}
			})
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if c.want == nil {
				if r.stderr != "" {
					t.Errorf("stderr %q, want none", r.stderr)
				}
				return
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "unionfsd: ") {
				t.Errorf("stderr %q, want one line", r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}
}
