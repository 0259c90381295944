package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountpointInsideLayer: a union mounted inside one of its own layer
// dirs (lower, upper or workdir) contains itself, and used to deadlock
// every process touching it; it is refused with one error line, also when
// a symlink or a bind mount hides the overlap, and so is a layer reached
// through a bind mount of the mountpoint. The test never enters a mount
// the old code made, and aborts any FUSE connection under the layout
// before its cleanup unmounts, so a missing check cannot hang the machine.
func TestMountpointInsideLayer(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name, cause string
		// args returns the command line and the mountpoint it uses.
		args func(t *testing.T, b *layout) ([]string, string)
	}{
		{"inside a lower", "inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + ":" + b.l1, b.l1 + "/dir"}, b.l1 + "/dir"
		}},
		{"deep inside a lower (overlay syntax)", "inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			m := mkdirT(t, b.l2+"/a/b")
			return []string{"-o", "lowerdir=" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work, m}, m
		}},
		{"inside the upper", "inside upper dir", func(t *testing.T, b *layout) ([]string, string) {
			m := mkdirT(t, b.up+"/m")
			return []string{b.up + ":" + b.l1, m}, m
		}},
		{"inside the workdir", "inside workdir", func(t *testing.T, b *layout) ([]string, string) {
			m := mkdirT(t, b.work+"/m")
			return []string{"-o", "lowerdir=" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work, m}, m
		}},
		{"inside a lower through a symlink", "inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			if err := os.Symlink(b.l1, b.base+"/link"); err != nil {
				t.Fatal(err)
			}
			return []string{b.up + ":" + b.l1, b.base + "/link/dir"}, b.l1 + "/dir"
		}},
		{"inside a lower through a bind mount", "inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			bind := mkdirT(t, b.base+"/bind")
			mountT(t, b.l1, bind, "", unix.MS_BIND, "")
			return []string{b.up + ":" + b.l1, bind + "/dir"}, bind + "/dir"
		}},
		{"lower inside the mountpoint through a bind mount", "would hide layer dir", func(t *testing.T, b *layout) ([]string, string) {
			mkdirT(t, b.mnt+"/low")
			alias := mkdirT(t, b.base+"/alias")
			mountT(t, b.mnt, alias, "", unix.MS_BIND, "")
			return []string{b.up + ":" + alias + "/low:" + b.l1, b.mnt}, b.mnt
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			t.Cleanup(func() { abortFuseUnder(t, b.base) })
			if err := os.MkdirAll(b.work, 0o755); err != nil {
				t.Fatal(err)
			}
			args, mnt := c.args(t, b)
			r := runCLI(t, runOpts{}, args...)
			assertOneErrorLine(t, r, 1, mnt, c.cause)
			assertNothingLeft(t, b)
		})
	}
}

// TestOverlappingLayers: as kernel overlay, layer dirs that are inside one
// another or the same dir are refused, also through a bind mount (an upper
// reached through a bind mount of a lower would let writes change the
// lower layer), and nothing is created.
func TestOverlappingLayers(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name, cause string
		// args returns the command line and the path the error names.
		args func(t *testing.T, b *layout) ([]string, string)
	}{
		{"lower inside a lower", "lower dir is inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + ":" + b.l1 + "/dir:" + b.l1, b.mnt}, b.l1 + "/dir"
		}},
		{"same lower twice", "lower dir is also a lower dir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{"-o", "lowerdir=" + b.l1 + ":" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up, b.mnt}, b.l1
		}},
		{"upper inside a lower through a bind mount", "upper dir is inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			bind := mkdirT(t, b.base+"/bind")
			mountT(t, b.l1, bind, "", unix.MS_BIND, "")
			return []string{bind + "/dir:" + b.l1, b.mnt}, bind + "/dir"
		}},
		{"lower is the upper through a bind mount", "upper dir is also a lower dir", func(t *testing.T, b *layout) ([]string, string) {
			bind := mkdirT(t, b.base+"/bind")
			mountT(t, b.up, bind, "", unix.MS_BIND, "")
			return []string{b.up + ":" + bind, b.mnt}, b.up
		}},
		{"workdir to be made inside a lower", "workdir is inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			w := b.l1 + "/dir/w"
			return []string{"-o", "lowerdir=" + b.l1 + ",upperdir=" + b.up + ",workdir=" + w, b.mnt}, w
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			t.Cleanup(func() { abortFuseUnder(t, b.base) })
			args, path := c.args(t, b)
			before := treeOf(t, b.base)
			r := runCLI(t, runOpts{}, args...)
			assertOneErrorLine(t, r, 1, path, c.cause)
			assertNothingLeft(t, b)
			if after := treeOf(t, b.base); after != before {
				t.Errorf("a refused mount changed the layout:\n%s\nto\n%s", before, after)
			}
		})
	}
}

// treeOf lists the names under dir.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		names = append(names, p)
		return nil
	})
	return strings.Join(names, "\n")
}

func mkdirT(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// abortFuseUnder aborts the connection of every FUSE mount under dir, so
// that a union that deadlocked on itself lets go and can be unmounted.
func abortFuseUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], dir+"/") || !strings.Contains(line, " - fuse") {
			continue
		}
		const ctl = "/sys/fs/fuse/connections"
		if _, err := os.Stat(ctl + "/" + "."); err == nil {
			if ents, _ := os.ReadDir(ctl); len(ents) == 0 {
				unix.Mount("none", ctl, "fusectl", 0, "")
			}
		}
		minor := f[2][strings.IndexByte(f[2], ':')+1:]
		t.Logf("aborting FUSE connection %s of %s", minor, f[4])
		os.WriteFile(filepath.Join(ctl, minor, "abort"), []byte("1"), 0)
	}
}
