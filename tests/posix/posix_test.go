// Package posix runs go-fuse's posixtest suite against a unionfsd mount.
package posix

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/tests/difftest"
	"github.com/unionfsd/unionfsd/unionfs"
)

var target = flag.String("posix.target", "unionfsd",
	"what to run posixtest on: unionfsd, overlay (kernel overlay, the reference) or plain (the backing file system)")

// skipped are the posixtest cases that test something no union file system
// (and no ordinary one) provides; each says why. Everything else must pass.
var skipped = map[string]string{
	// Two opens of one file by one process take F_WRLCK then F_RDLCK and
	// the test wants EAGAIN. POSIX record locks belong to the process, so
	// the second lock just converts the first: ext4 and kernel overlay
	// succeed too (run -posix.target=plain). go-fuse's own TestAll skips it.
	"FcntlFlockLocksFile": "expects a lock conflict between two fds of one process, which POSIX locks never give (ext4 fails it too)",
}

// where a case runs inside the union.
var places = []struct {
	name  string
	setup func(mnt string) (string, error)
}{
	// A directory that exists only in the lower layer: the first write in
	// it copies it up.
	{"lowerdir", func(mnt string) (string, error) { return filepath.Join(mnt, "t"), nil }},
	// A directory made through the mount: upper only.
	{"newdir", func(mnt string) (string, error) {
		d := filepath.Join(mnt, "new")
		return d, os.Mkdir(d, 0o755)
	}},
}

// lowerLayer has the test dir "t" (empty) beside unrelated lower content.
var lowerLayer = difftest.Layer{
	{Path: "t", Type: difftest.EDir, Mode: 0o755},
	{Path: "other", Type: difftest.EDir, Mode: 0o755},
	{Path: "other/file", Type: difftest.EFile, Mode: 0o644, Data: "lower\n"},
	{Path: "README", Type: difftest.EFile, Mode: 0o644, Data: "lower layer\n"},
}

func TestPosix(t *testing.T) {
	if reason := difftest.CanMount(); reason != "" && *target != "plain" {
		t.Skip(reason)
	}
	runPosix(t, "")
}

// TestPosixIoUring runs the suite again with unionfsd serving requests over
// FUSE over io_uring (io_uring=on), switching the kernel's enable_uring on
// for the run.
func TestPosixIoUring(t *testing.T) {
	if reason := difftest.CanMount(); reason != "" {
		t.Skip(reason)
	}
	if *target != "unionfsd" {
		t.Skip("-posix.target=" + *target + ": io_uring is a unionfsd setting")
	}
	difftest.NeedIoUring(t)
	runPosix(t, unionfs.IoUringOn)
}

// runPosix runs every posixtest case in each place; ioUring, if set, is
// unionfsd's io_uring mode.
func runPosix(t *testing.T, ioUring string) {
	var names []string
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fn := posixtest.All[name]
		t.Run(name, func(t *testing.T) {
			if why, ok := skipped[name]; ok {
				t.Skip(why)
			}
			for _, pl := range places {
				t.Run(pl.name, func(t *testing.T) {
					mnt := mount(t, ioUring)
					dir, err := pl.setup(mnt)
					if err != nil {
						t.Fatal(err)
					}
					fn(t, dir)
				})
			}
		})
	}
}

// mount makes a fresh union for one case and returns its root; the unmount
// is registered with t.Cleanup.
func mount(t *testing.T, ioUring string) string {
	t.Helper()
	dir := t.TempDir()
	lower, upper, work, mnt := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"),
		filepath.Join(dir, "work"), filepath.Join(dir, "mnt")
	if err := difftest.Build(lower, lowerLayer, difftest.OverlayFormat); err != nil {
		t.Fatal(err)
	}
	if *target == "plain" {
		return lower // no union: the backing file system itself
	}
	for _, d := range []string{upper, work, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var unmount func() error
	var err error
	switch *target {
	case "unionfsd":
		cfg := unionfs.DefaultConfig()
		cfg.Lowers = []string{lower}
		cfg.Upper, cfg.Work = upper, work
		if ioUring != "" {
			cfg.IoUring = ioUring
		}
		unmount, err = difftest.MountUnionfsd(mnt, cfg)
	case "overlay":
		unmount, err = difftest.Overlay.Mount([]string{lower}, upper, work, mnt)
	default:
		err = fmt.Errorf("-posix.target=%q: want unionfsd, overlay or plain", *target)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Error(err)
		}
	})
	return mnt
}

// TestMain detaches the mounts left behind (testsupport.MainDetachingMounts).
func TestMain(m *testing.M) { testsupport.MainDetachingMounts(m, "posix", difftest.DetachAll) }
