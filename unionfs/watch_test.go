package unionfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// watchDeadline is how fast a direct change must show with watching on:
// well under ShortTimeout, so only an invalidation can make it (the
// kernel caches for WatchedTimeout otherwise). The measured latency is
// logged; it is a few milliseconds on an idle machine.
const watchDeadline = 700 * time.Millisecond

// sh runs a shell command in a child process: a change made directly in a
// layer dir by someone else (fanotify drops the daemon's own process's
// changes, and the daemon here is the test process).
func sh(t *testing.T, script string) {
	t.Helper()
	if out, err := exec.Command("sh", "-ec", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
}

// seen describes what the mount shows at rel: "absent", or the size, mode
// and content of a file, or the names of a directory.
func seen(path string) string {
	st, err := os.Lstat(path)
	if err != nil {
		return "absent"
	}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return "dir: " + err.Error()
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return "dir " + strings.Join(names, ",")
	}
	data, _ := os.ReadFile(path)
	return fmt.Sprintf("%d %o %q", st.Size(), st.Mode().Perm(), data)
}

// watchCase is one direct change and what the mount must show after it.
type watchCase struct {
	name   string
	script string            // run with L (the layer) set
	want   map[string]string // mount path → seen()
}

func watchCases() []watchCase {
	return []watchCase{
		{"add", `echo new >"$L/d/added"`, map[string]string{"d/added": `4 644 "new\n"`, "d": "dir added,keep"}},
		{"content", `printf 'changed, longer' >"$L/f"`, map[string]string{"f": `15 644 "changed, longer"`}},
		{"attrs", `chmod 600 "$L/f"`, map[string]string{"f": `15 600 "changed, longer"`}},
		{"rename", `mv "$L/d/added" "$L/d/moved"`, map[string]string{"d/added": "absent", "d/moved": `4 644 "new\n"`, "d": "dir keep,moved"}},
		{"delete", `rm "$L/d/moved"`, map[string]string{"d/moved": "absent", "d": "dir keep"}},
		{"mkdir", `mkdir "$L/d/sub" && echo x >"$L/d/sub/x"`, map[string]string{"d/sub/x": `2 644 "x\n"`, "d": "dir keep,sub"}},
	}
}

// primeCache looks at every path a case checks, twice, so that the kernel
// holds them (names, misses, attributes, pages, listings) before the change.
func primeCache(t *testing.T, tu *testUnion, cases []watchCase) {
	for i := 0; i < 2; i++ {
		for _, c := range cases {
			for rel := range c.want {
				seen(tu.m(rel))
			}
		}
	}
}

// TestWatchDirectChanges changes a lower and the upper directly (from a
// child process) and checks that the mount shows each change: with
// watching, within watchDeadline although the caches are long; with
// watch=off, within the short timeout.
func TestWatchDirectChanges(t *testing.T) {
	for _, mode := range []string{WatchFanotify, WatchInotify, WatchOff} {
		for _, layer := range []string{"lower", "upper"} {
			t.Run(mode+"/"+layer, func(t *testing.T) {
				tu := newLayers(t, 1)
				for _, l := range []string{tu.lowers[0], tu.upper} {
					mkdirAll(t, filepath.Join(l, "d"))
				}
				dir := tu.lowers[0]
				if layer == "upper" {
					dir = tu.upper
				}
				writeFile(t, filepath.Join(dir, "f"), "original")
				writeFile(t, filepath.Join(dir, "d", "keep"), "keep")
				var mu sync.Mutex
				var warnings []string
				tu.mount(t, func(c *Config) {
					c.Watch = mode
					c.Warn = func(m string) { mu.Lock(); warnings = append(warnings, m); mu.Unlock() }
				})
				deadline := watchDeadline
				if mode == WatchOff {
					deadline = 3 * ShortTimeout
				}
				cases := watchCases()
				var worst time.Duration
				for _, c := range cases {
					primeCache(t, tu, cases)
					sh(t, "L="+dir+"; "+c.script)
					start := time.Now()
					ok := eventually(deadline, func() bool {
						for rel, want := range c.want {
							if seen(tu.m(rel)) != want {
								return false
							}
						}
						return true
					})
					took := time.Since(start)
					if !ok {
						for rel, want := range c.want {
							if got := seen(tu.m(rel)); got != want {
								t.Errorf("%s: %s after %v: %s, want %s", c.name, rel, deadline, got, want)
							}
						}
						continue
					}
					worst = max(worst, took)
				}
				t.Logf("watch=%s, %s layer: slowest change showed after %v", mode, layer, worst)
				mu.Lock()
				defer mu.Unlock()
				if len(warnings) > 0 {
					t.Errorf("watching warned: %q", warnings)
				}
			})
		}
	}
}

// TestWatchLongTimeouts checks that with watching on the kernel really
// keeps what it looked up past the short timeout: a change the watch does
// not report (made by the daemon's own process, which fanotify drops) stays
// unseen after ShortTimeout, and the same kind of change made by another
// process shows at once. It only stats: a read would make the kernel ask
// for the attributes again (atime).
func TestWatchLongTimeouts(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, filepath.Join(tu.lowers[0], "f"), "one")
	tu.mount(t, func(c *Config) { c.Watch = WatchFanotify })
	mode := func() os.FileMode {
		st, err := os.Lstat(tu.m("f"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if got := mode(); got != 0o644 {
		t.Fatalf("f: mode %o", got)
	}
	if err := os.Chmod(filepath.Join(tu.lowers[0], "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ShortTimeout + 500*time.Millisecond)
	if got := mode(); got != 0o644 {
		t.Errorf("f after the short timeout, unreported change: mode %o, want the cached 644", got)
	}
	sh(t, "chmod 640 "+filepath.Join(tu.lowers[0], "f"))
	if !eventually(watchDeadline, func() bool { return mode() == 0o640 }) {
		t.Errorf("f after a reported chmod: mode %o, want 640", mode())
	}
}

// TestWatchOwnWritesQuiet checks that changes made through the mount (by
// another process, as a user's tar would: with passthrough the kernel
// writes the upper file in that process's name) cause no invalidation: the
// kernel knows of them from the requests.
func TestWatchOwnWritesQuiet(t *testing.T) {
	tu := newLayers(t, 1)
	root := tu.mountRoot(t, func(c *Config) { c.Watch = WatchFanotify })
	before := root.u.watch.events.Load()
	sh(t, `cd "`+tu.mnt+`"; for i in $(seq 50); do echo data >f$i; chmod 600 f$i; echo more >>f$i; done; rm f1 f2 f3`)
	// Another process's direct change must still count: it proves events
	// flow.
	sh(t, "echo x >"+filepath.Join(tu.upper, "other"))
	if !eventually(watchDeadline, func() bool { return root.u.watch.events.Load() > before }) {
		t.Fatal("no event for a direct change")
	}
	time.Sleep(100 * time.Millisecond)
	if n := root.u.watch.events.Load() - before; n > 3 {
		t.Errorf("%d invalidations for 50 files written through the mount and one made directly, want at most 3", n)
	}
}

// mountRoot mounts tu as tu.mount does and returns its root.
func (tu *testUnion) mountRoot(t *testing.T, tweak func(*Config)) *Root {
	t.Helper()
	testsupport.RequireFUSE(t)
	cfg := DefaultConfig()
	cfg.Lowers, cfg.Upper, cfg.Work = tu.lowers, tu.upper, tu.work
	tweak(&cfg)
	srv, root, err := mountRoot(tu.mnt, cfg)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	testsupport.UnmountAtCleanup(t, tu.mnt, srv.Unmount)
	return root
}

// TestWatchModes checks which watcher each layer gets.
func TestWatchModes(t *testing.T) {
	for _, c := range []struct{ mode, want string }{
		{WatchAuto, WatchFanotify}, {WatchFanotify, WatchFanotify}, {WatchInotify, WatchInotify}, {WatchOff, ""},
	} {
		tu := newLayers(t, 2)
		got := tu.mountRoot(t, func(cfg *Config) { cfg.Watch = c.mode }).Watching()
		if !slices.Equal(got, []string{c.want, c.want, c.want}) {
			t.Errorf("watch=%s: layers watched by %q, want %q each", c.mode, got, c.want)
		}
	}
}

// TestWatchHardLinkedLower changes a hard-linked lower file directly under
// one name; its other name, a separate inode of the mount, shows the change
// too.
func TestWatchHardLinkedLower(t *testing.T) {
	tu := newLayers(t, 1)
	a, b := filepath.Join(tu.lowers[0], "a"), filepath.Join(tu.lowers[0], "b")
	writeFile(t, a, "one")
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	tu.mount(t, func(c *Config) { c.Watch = WatchFanotify })
	for i := 0; i < 2; i++ {
		seen(tu.m("a"))
		seen(tu.m("b"))
	}
	sh(t, "chmod 600 "+a+" && printf 'two, longer' >"+a)
	for _, name := range []string{"a", "b"} {
		want := `11 600 "two, longer"`
		if !eventually(watchDeadline, func() bool { return seen(tu.m(name)) == want }) {
			t.Errorf("%s: %s, want %s", name, seen(tu.m(name)), want)
		}
	}
}
