package unionfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// The attacker of TestRenameRaceStaysInLayers is this test binary run again
// as an unprivileged user, with these variables set.
const (
	attackerEnv   = "UNIONFS_TEST_ATTACKER"
	attackerSwaps = 3000
	attackerUID   = 1500
)

// TestRenameRaceStaysInLayers races an unprivileged user's renames,
// RENAME_EXCHANGEs and symlink swaps of a directory against setattr
// (chmod, chown, truncate, utimes), setxattr, link, unlink, O_CREAT and
// copy-up of entries inside it. The daemon runs as root; if any of its
// calls resolved the swapped directory as a symlink, it would change the
// root-owned files the symlink points at, outside every layer. Nothing
// outside the layers may change.
func TestRenameRaceStaysInLayers(t *testing.T) {
	tu := newLayers(t, 1)
	base := filepath.Dir(tu.upper)
	// The victim: root-owned files outside the layers, under the names the
	// attacker's ops use inside the swapped directory.
	victim := filepath.Join(base, "victim", "d")
	mkdirAll(t, victim)
	for _, name := range []string{"f", "g", "n", "low"} {
		writeFile(t, filepath.Join(victim, name), "root's "+name)
		must(t, os.Chmod(filepath.Join(victim, name), 0o600))
	}
	play := filepath.Join(tu.lowers[0], "play")
	mkdirAll(t, filepath.Join(play, "lower"))
	for i := 0; i < 200; i++ {
		writeFile(t, filepath.Join(play, "lower", "low"+strconv.Itoa(i)), "lower data")
	}
	must(t, filepath.Walk(play, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, attackerUID, attackerUID)
	}))
	openToAll(t, tu.mnt)
	must(t, os.Chmod(tu.lowers[0], 0o755))
	tu.mount(t, func(c *Config) { c.AllowOther = true })
	before := testsupport.Fingerprint(t, filepath.Dir(victim))

	// The test binary lives in a dir only root may enter: run a copy.
	self, err := os.ReadFile(os.Args[0])
	must(t, err)
	attacker := filepath.Join(base, "attacker")
	must(t, os.WriteFile(attacker, self, 0o755))
	cmd := exec.Command(attacker, "-test.run=^TestEscapeAttacker$", "-test.v")
	cmd.Env = append(os.Environ(), attackerEnv+"="+tu.m("play")+"|"+victim)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attackerUID, Gid: attackerUID}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("attacker: %v\n%s", err, out)
	}
	t.Logf("attacker:\n%s", out)
	if after := testsupport.Fingerprint(t, filepath.Dir(victim)); after != before {
		t.Errorf("files outside the layers changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestEscapeAttacker is the unprivileged side of TestRenameRaceStaysInLayers.
func TestEscapeAttacker(t *testing.T) {
	arg := os.Getenv(attackerEnv)
	if arg == "" {
		t.Skip("run by TestRenameRaceStaysInLayers")
	}
	var play, victim string
	for i := range arg {
		if arg[i] == '|' {
			play, victim = arg[:i], arg[i+1:]
		}
	}
	a, s := filepath.Join(play, "a"), filepath.Join(play, "s")
	must(t, os.Mkdir(a, 0o755))
	must(t, os.WriteFile(filepath.Join(a, "f"), []byte("mine"), 0o644))
	must(t, os.Symlink(victim, s))
	f, err := os.OpenFile(filepath.Join(a, "f"), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	dir, err := unix.Open(a, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(dir)
	fd := int(f.Fd())

	var stop atomic.Bool
	var opsDone atomic.Int64
	ops := []func(i int){
		func(i int) { unix.Fchmod(fd, uint32(0o604+i%2*0o040)) },
		func(i int) { unix.Fchown(fd, attackerUID, attackerUID) },
		func(i int) { unix.Ftruncate(fd, int64(i%3)) },
		func(i int) {
			unix.UtimesNanoAt(dir, "f", []unix.Timespec{{Sec: int64(i)}, {Sec: int64(i)}}, unix.AT_SYMLINK_NOFOLLOW)
		},
		func(i int) { unix.Fsetxattr(fd, "user.race", []byte("x"), 0) },
		func(i int) { unix.Chmod(filepath.Join(a, "f"), 0o606) },
		func(i int) { unix.Truncate(filepath.Join(a, "f"), 1) },
		func(i int) { unix.Lsetxattr(filepath.Join(a, "f"), "user.race", []byte("y"), 0) },
		func(i int) {
			if unix.Linkat(dir, "f", dir, "g", 0) == nil {
				unix.Unlinkat(dir, "g", 0)
			}
		},
		func(i int) {
			if nfd, err := unix.Openat(dir, "n", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644); err == nil {
				unix.Close(nfd)
				unix.Unlinkat(dir, "n", 0)
			}
		},
		func(i int) {
			// Copy-up of lower files, into the dir being swapped (by a
			// rename into it) and in place (chmod).
			low := filepath.Join(play, "lower", "low"+strconv.Itoa(i%200))
			unix.Chmod(low, 0o640)
			unix.Rename(low, filepath.Join(a, "low"))
		},
	}
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				op(i)
				opsDone.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	swaps := 0
	for ; swaps < attackerSwaps && time.Now().Before(deadline); swaps++ {
		switch swaps % 3 {
		case 0, 1:
			// The dir and the symlink trade places, and back.
			unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, s, unix.RENAME_EXCHANGE)
		case 2:
			// A plain rename away and a symlink put in its place.
			moved := filepath.Join(play, "moved")
			if unix.Rename(a, moved) == nil {
				if unix.Symlink(victim, a) == nil {
					unix.Unlink(a)
				}
				unix.Rename(moved, a)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	fmt.Printf("%d swaps, %d ops\n", swaps, opsDone.Load())
}
