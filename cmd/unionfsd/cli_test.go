package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestVersionAndHelp(t *testing.T) {
	r := runCLI(t, runOpts{}, "--version")
	if r.code != 0 || r.stdout != "unionfsd dev\n" {
		t.Errorf("--version: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, runOpts{}, "--help")
	for _, s := range []string{"lowerdir=", "=RW", "mount -t fuse.unionfsd", "--entry-timeout"} {
		if r.code != 0 || !strings.Contains(r.stdout, s) {
			t.Errorf("--help: exit %d, output lacks %q", r.code, s)
		}
	}
}

// TestBadInput runs the command on bad input and checks it fails with one
// line naming the path and the cause, and leaves no mount and no process.
func TestBadInput(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name  string
		code  int
		cause string
		// args returns the command line and the path the error must name.
		args func(t *testing.T, b *layout) ([]string, string)
	}{
		{"missing lower", 1, "no such file or directory", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + ":" + b.base + "/nope", b.mnt}, b.base + "/nope"
		}},
		{"lower is a file", 1, "not a directory", func(t *testing.T, b *layout) ([]string, string) {
			return []string{"-o", "lowerdir=" + b.l1 + "/a", b.mnt}, b.l1 + "/a"
		}},
		{"upper inside a lower", 1, "inside lower dir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.l1 + "/dir:" + b.l1, b.mnt}, b.l1 + "/dir"
		}},
		{"lower inside the upper", 1, "inside upper dir", func(t *testing.T, b *layout) ([]string, string) {
			os.Mkdir(b.up+"/sub", 0o755)
			return []string{b.up + ":" + b.up + "/sub", b.mnt}, b.up + "/sub"
		}},
		{"upper not writable", 1, "not writable", func(t *testing.T, b *layout) ([]string, string) {
			mountT(t, b.up, b.up, "", unix.MS_BIND, "")
			if err := unix.Mount("", b.up, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
				t.Fatal(err)
			}
			return []string{b.up + ":" + b.l1, b.mnt}, b.up
		}},
		{"workdir on another filesystem", 1, "another filesystem", func(t *testing.T, b *layout) ([]string, string) {
			os.Mkdir(b.base+"/other", 0o755)
			mountT(t, "tmpfs", b.base+"/other", "tmpfs", 0, "")
			w := b.base + "/other/work"
			return []string{"-o", "lowerdir=" + b.l1 + ",upperdir=" + b.up + ",workdir=" + w, b.mnt}, w
		}},
		{"mountpoint missing", 1, "no such file or directory", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + ":" + b.l1, b.base + "/nomnt"}, b.base + "/nomnt"
		}},
		{"mountpoint not a dir", 1, "not a directory", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + ":" + b.l1, b.l1 + "/a"}, b.l1 + "/a"
		}},
		{"mountpoint busy", 1, "busy", func(t *testing.T, b *layout) ([]string, string) {
			mountT(t, "tmpfs", b.mnt, "tmpfs", 0, "")
			return []string{b.up + ":" + b.l1, b.mnt}, b.mnt
		}},
		{"mountpoint hides a layer", 1, "hide layer dir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + ":" + b.l1, b.l1}, b.l1
		}},
		{"unknown branch mark", 2, "unknown branch mode", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + "=RW:" + b.l1 + "=XX", b.mnt}, b.l1
		}},
		{"two RW branches", 2, "second =RW branch", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.up + "=RW:" + b.l1 + "=RW", b.mnt}, b.l1
		}},
		{"RW not first", 2, "must come first", func(t *testing.T, b *layout) ([]string, string) {
			return []string{b.l1 + "=RO:" + b.up + "=RW", b.mnt}, b.up
		}},
		{"empty lowerdir", 2, "empty lowerdir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{"-o", "lowerdir=,upperdir=" + b.up, b.mnt}, "lowerdir="
		}},
		{"workdir without upperdir", 2, "without an upper dir", func(t *testing.T, b *layout) ([]string, string) {
			return []string{"-o", "lowerdir=" + b.l1 + ",workdir=" + b.work, b.mnt}, b.work
		}},
		{"unknown option", 2, "unknown mount option", func(t *testing.T, b *layout) ([]string, string) {
			return []string{"-o", "bogus", b.up + ":" + b.l1, b.mnt}, "bogus"
		}},
		{"no arguments", 2, "missing BRANCHES and MOUNTPOINT", func(t *testing.T, b *layout) ([]string, string) {
			return nil, ""
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			args, path := c.args(t, b)
			r := runCLI(t, runOpts{}, args...)
			assertOneErrorLine(t, r, c.code, path, c.cause)
			assertNothingLeft(t, b)
			if _, err := os.Stat(b.work); err == nil {
				t.Errorf("failed run created the workdir %s", b.work)
			}
		})
	}
}

// TestBadInputAsUser covers failures that root never meets: unreadable and
// unwritable layers, no mount helper, and a mount the helper refuses (that
// one fails inside the background child, so it also checks the child's
// report reaches the user and the child does not linger).
func TestBadInputAsUser(t *testing.T) {
	requireRoot(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	cases := []struct {
		name  string
		env   []string
		cause string
		setup func(b *layout) ([]string, string)
	}{
		{"unreadable lower", nil, "not searchable: permission denied", func(b *layout) ([]string, string) {
			os.Chown(b.up, 65534, 65534)
			os.Chown(b.mnt, 65534, 65534)
			os.Chmod(b.l2, 0o700)
			return []string{b.up + ":" + b.l2 + ":" + b.l1, b.mnt}, b.l2
		}},
		{"unwritable upper", nil, "upper dir: not writable: permission denied", func(b *layout) ([]string, string) {
			os.Chown(b.mnt, 65534, 65534)
			return []string{b.up + ":" + b.l1, b.mnt}, b.up
		}},
		{"no mount helper", []string{"PATH=/nonexistent"}, "not allowed to mount", func(b *layout) ([]string, string) {
			os.Chown(b.up, 65534, 65534)
			return []string{b.up + ":" + b.l1, b.mnt}, b.mnt
		}},
		{"helper refuses", nil, "mount failed", func(b *layout) ([]string, string) {
			if _, err := exec.LookPath("fusermount3"); err != nil {
				t.Skip("fusermount3 missing: apt-get install fuse3")
			}
			os.Chown(b.up, 65534, 65534) // the mountpoint stays root's
			return []string{b.up + ":" + b.l1, b.mnt}, b.mnt
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			args, path := c.setup(b)
			r := runCLI(t, runOpts{env: c.env, cred: nobody}, args...)
			assertOneErrorLine(t, r, 1, path, c.cause)
			assertNothingLeft(t, b)
		})
	}
}

// TestNoFuseDevice hides /dev/fuse in a private mount namespace.
func TestNoFuseDevice(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) missing")
	}
	b := newLayout(t)
	wrap := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs nodev /dev && exec "$0" "$@"`}
	r := runCLI(t, runOpts{wrap: wrap}, b.up+":"+b.l1, b.mnt)
	assertOneErrorLine(t, r, 1, "/dev/fuse", "no such file or directory")
	assertNothingLeft(t, b)
}

// TestBranchSyntaxMount mounts "upper:lower2:lower1", checks the merged view
// and copy-up, and stops the daemon with SIGTERM.
func TestBranchSyntaxMount(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	pid := mountBackground(t, b, b.up+":"+b.l2+":"+b.l1, b.mnt)
	if got := readFile(t, b.mnt+"/a"); got != "a from l1\n" {
		t.Errorf("a = %q, want the bottom layer's", got)
	}
	if got := readFile(t, b.mnt+"/b"); got != "b from l2\n" {
		t.Errorf("b = %q, want l2's (upper layers win)", got)
	}
	if err := os.WriteFile(b.mnt+"/a", []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, b.up+"/a"); got != "changed\n" {
		t.Errorf("upper/a = %q after a write through the mount, want a copy-up", got)
	}
	if got := readFile(t, b.l1+"/a"); got != "a from l1\n" {
		t.Errorf("lower l1/a changed to %q", got)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitGone(pid, 5*time.Second) {
		t.Fatal("daemon still running 5s after SIGTERM")
	}
	if _, ok := mountAt(b.mnt); ok {
		t.Error("SIGTERM left the mount in place")
	}
	assertNothingLeft(t, b)
}

// TestOverlaySyntaxMount mounts with lowerdir/upperdir/workdir and a
// source, and checks that "umount" from outside ends the daemon.
func TestOverlaySyntaxMount(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	opts := "lowerdir=" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work
	pid := mountBackground(t, b, "-o", opts, "none", b.mnt)
	m, _ := mountAt(b.mnt)
	if m.fstype != "fuse.unionfsd" || m.source != "none" {
		t.Errorf("mount is %s from %q, want fuse.unionfsd from \"none\"", m.fstype, m.source)
	}
	if got := readFile(t, b.mnt+"/b"); got != "b from l2\n" {
		t.Errorf("b = %q, want l2's (lowerdir lists the top first)", got)
	}
	if err := os.Remove(b.mnt + "/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(b.up + "/.wh.a"); err != nil {
		t.Errorf("deleting a lower file left no whiteout in the upper: %v", err)
	}
	if out, err := exec.Command("umount", b.mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if !waitGone(pid, 5*time.Second) {
		t.Fatal("daemon still running 5s after umount")
	}
	assertNothingLeft(t, b)
}

// TestReadOnlyMounts checks "-o ro" and an all-RO branch list refuse writes.
func TestReadOnlyMounts(t *testing.T) {
	requireRoot(t)
	variants := map[string]func(b *layout) []string{
		"-o ro": func(b *layout) []string {
			return []string{"-o", "ro,lowerdir=" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work, b.mnt}
		},
		"all =RO": func(b *layout) []string { return []string{b.l2 + "=RO:" + b.l1 + "=RO", b.mnt} },
	}
	for name, args := range variants {
		t.Run(name, func(t *testing.T) {
			b := newLayout(t)
			pid := mountBackground(t, b, args(b)...)
			if got := readFile(t, b.mnt+"/b"); got != "b from l2\n" {
				t.Errorf("b = %q", got)
			}
			err := os.WriteFile(b.mnt+"/a", []byte("x"), 0o644)
			if !errors.Is(err, syscall.EROFS) {
				t.Errorf("write to a read-only union: %v, want EROFS", err)
			}
			if err := os.Mkdir(b.mnt+"/new", 0o755); !errors.Is(err, syscall.EROFS) {
				t.Errorf("mkdir in a read-only union: %v, want EROFS", err)
			}
			if entries, _ := os.ReadDir(b.up); len(entries) != 0 {
				t.Errorf("read-only mount wrote to the upper: %v", entries)
			}
			syscall.Kill(pid, syscall.SIGTERM)
			waitGone(pid, 5*time.Second)
			assertNothingLeft(t, b)
		})
	}
}

// TestForegroundSigint runs with -f: the command itself serves the mount
// and SIGINT unmounts it and ends it with status 0.
func TestForegroundSigint(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	cmd := exec.Command(unionfsdBin, "-f", b.up+":"+b.l1, b.mnt)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	if !eventually(5*time.Second, func() bool { _, ok := mountAt(b.mnt); return ok }) {
		t.Fatalf("no mount after 5s; stderr %q", stderr.String())
	}
	select {
	case err := <-exited:
		t.Fatalf("-f returned while mounted: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGINT: %v (stderr %q)", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5s after SIGINT")
	}
	assertNothingLeft(t, b)
}

// TestBusyMountIsDetached sends SIGTERM while a file in the mount is open:
// the daemon must still go away and take the mount with it (lazily).
func TestBusyMountIsDetached(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	pid := mountBackground(t, b, b.up+":"+b.l1, b.mnt)
	f, err := os.Open(b.mnt + "/a")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitGone(pid, 10*time.Second) {
		t.Fatal("daemon still running 10s after SIGTERM on a busy mount")
	}
	if _, ok := mountAt(b.mnt); ok {
		t.Error("busy mount still in the tree after the daemon exited")
	}
}

// TestMountHelperFuse goes through mount(8) and mount.fuse3 with the
// "fuse" type and a full program path, which needs no PATH lookup.
func TestMountHelperFuse(t *testing.T) {
	requireRoot(t)
	requireMountFuse(t)
	b := newLayout(t)
	opts := "lowerdir=" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work
	out, err := exec.Command("mount", "-t", "fuse", unionfsdBin+"#none", b.mnt, "-o", opts).CombinedOutput()
	if err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	if got := readFile(t, b.mnt+"/b"); got != "b from l2\n" {
		t.Errorf("b = %q", got)
	}
	pids := daemonsFor(b.mnt)
	if out, err := exec.Command("umount", b.mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	for _, pid := range pids {
		if !waitGone(pid, 5*time.Second) {
			t.Errorf("daemon %d still running after umount", pid)
		}
	}
	assertNothingLeft(t, b)
}

// TestMountTypeFuseUnionfsd runs "mount -t fuse.unionfsd". mount(8) clears
// PATH before it runs /sbin/mount.fuse3, whose shell then only searches the
// default dirs; so in a private mount namespace the test puts the binary in
// /usr/local/sbin (a tmpfs there, invisible to the rest of the system).
func TestMountTypeFuseUnionfsd(t *testing.T) {
	requireRoot(t)
	requireMountFuse(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) missing")
	}
	if _, err := os.Stat("/usr/local/sbin"); err != nil {
		t.Skip("/usr/local/sbin missing")
	}
	b := newLayout(t)
	script := `set -e
mount -t tmpfs nodev /usr/local/sbin
ln -s "$BIN" /usr/local/sbin/unionfsd
mount -t fuse.unionfsd none "$MNT" -o "lowerdir=$L2:$L1,upperdir=$UP,workdir=$WORK"
cat "$MNT/b"
awk -v m="$MNT" '$5 == m { for (i = 7; i < NF; i++) if ($i == "-") print $(i+1) }' /proc/self/mountinfo
umount "$MNT"
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BIN="+unionfsdBin, "MNT="+b.mnt, "L1="+b.l1, "L2="+b.l2,
		"UP="+b.up, "WORK="+b.work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "b from l2\nfuse.unionfsd\n"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	assertNothingLeft(t, b)
}

func requireMountFuse(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Skip("mount.fuse3 missing: apt-get install fuse3")
}
