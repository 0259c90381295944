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

// TestMountFlags checks that exec/noexec, suid/nosuid and dev/nodev reach
// the mount: /proc/self/mountinfo shows them, a binary in a noexec union
// cannot run (EACCES), a setuid-root binary run by nobody gets euid 0 only
// with suid, and a device node opens only with dev. nosuid and nodev are the
// default, and the last of a pair wins.
func TestMountFlags(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		opts                  string
		noexec, nosuid, nodev bool
	}{
		{"", false, true, true},
		{"noexec", true, true, true},
		{"suid,dev", false, false, false},
		{"noexec,exec,suid,nosuid,nodev,dev", false, true, false},
	}
	for _, c := range cases {
		t.Run("o="+c.opts, func(t *testing.T) {
			b := newLayout(t)
			idBin, err := os.ReadFile("/usr/bin/id")
			if err != nil {
				t.Skip("no /usr/bin/id")
			}
			if err := os.WriteFile(b.l1+"/id", idBin, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(b.l1+"/id", 0o4755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mknod(b.l1+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
			args := []string{b.up + ":" + b.l1, b.mnt}
			if c.opts != "" {
				args = append([]string{"-o", c.opts}, args...)
			}
			pid := mountBackground(t, b, args...)
			t.Cleanup(func() {
				exec.Command("umount", b.mnt).Run()
				waitGone(pid, 5*time.Second)
			})

			flags := mountFlagsAt(t, b.mnt)
			for flag, want := range map[string]bool{"noexec": c.noexec, "nosuid": c.nosuid, "nodev": c.nodev} {
				if flags[flag] != want {
					t.Errorf("mountinfo options %v: %s = %v, want %v", flags, flag, flags[flag], want)
				}
			}

			cmd := exec.Command(b.mnt+"/id", "-u")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.Output()
			switch {
			case c.noexec:
				if !errors.Is(err, syscall.EACCES) {
					t.Errorf("exec in a noexec union: %v (output %q), want EACCES", err, out)
				}
			case err != nil:
				t.Errorf("exec: %v", err)
			default:
				want := "0"
				if c.nosuid {
					want = "65534"
				}
				if got := strings.TrimSpace(string(out)); got != want {
					t.Errorf("setuid-root id -u run by nobody printed %s, want %s", got, want)
				}
			}

			f, err := os.OpenFile(b.mnt+"/null", os.O_RDWR, 0)
			if c.nodev {
				if !errors.Is(err, syscall.EACCES) {
					t.Errorf("open of a device node with nodev: %v, want EACCES", err)
				}
			} else if err != nil {
				t.Errorf("open of a device node with dev: %v", err)
			}
			if f != nil {
				f.Close()
			}
		})
	}
}

// TestSuidDevNeedRoot: a user cannot ask for suid or dev.
func TestSuidDevNeedRoot(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	for _, opt := range []string{"suid", "dev"} {
		r := runCLI(t, runOpts{cred: &syscall.Credential{Uid: 65534, Gid: 65534}}, "-o", opt, b.up+":"+b.l1, b.mnt)
		assertOneErrorLine(t, r, 1, b.mnt, "-o "+opt+": only root")
	}
	assertNothingLeft(t, b)
}

// mountFlagsAt returns the per-mount options mountinfo shows for dir.
func mountFlagsAt(t *testing.T, dir string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var opts string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == dir {
			opts = f[5] // the last one is on top
		}
	}
	if opts == "" {
		t.Fatalf("%s not in mountinfo", dir)
	}
	flags := map[string]bool{}
	for _, o := range strings.Split(opts, ",") {
		flags[o] = true
	}
	return flags
}
