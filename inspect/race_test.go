package inspect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/whiteout"
)

// The attack on diff and check of a live container's upper: the container
// keeps exchanging a dir of its upper with a symlink to a host dir while
// the walk runs again and again. Nothing of the host dir may show in the
// listing, and no repair may change it.

const hostSecretName = "HOST-SECRET-NAME-0xfeedface"

// maxRuns bounds the runs of a race test beside its time limit: a failing
// walk is fast. The old path-based walks failed within ~30 runs.
const maxRuns = 1000

// swapUnion makes a union whose upper holds the dir d and the symlink s to
// host, a root-only host dir that holds what check would repair in an
// upper: a whiteout that hides nothing, one beside its entry, a kernel
// whiteout that hides nothing, a dir with an overlay opaque xattr, and a
// uniquely named file.
func swapUnion(t *testing.T) (u *union, host string) {
	u = newUnion(t, 1)
	host = filepath.Join(u.base, "host")
	for _, dir := range []string{host, filepath.Join(u.upper, "d")} {
		must(t, os.MkdirAll(dir, 0o700))
		writeFile(t, filepath.Join(dir, whiteout.Name("ghost")), "")
		writeFile(t, filepath.Join(dir, "x"), "x\n")
		writeFile(t, filepath.Join(dir, whiteout.Name("x")), "")
		must(t, unix.Mknod(filepath.Join(dir, "cw"), unix.S_IFCHR|0o600, 0))
		must(t, os.Mkdir(filepath.Join(dir, "opq"), 0o755))
		must(t, unix.Setxattr(filepath.Join(dir, "opq"), whiteout.OpaqueXattrs[0], []byte("y"), 0))
	}
	writeFile(t, filepath.Join(host, hostSecretName), "secret\n")
	must(t, os.Symlink(host, filepath.Join(u.upper, "s")))
	return u, host
}

// keepSwapping exchanges upper/d and upper/s (the symlink) until the test
// ends.
func keepSwapping(t *testing.T, upper string) {
	t.Cleanup(testsupport.KeepExchanging(t, filepath.Join(upper, "d"), filepath.Join(upper, "s")))
}

// TestCheckRepairSymlinkSwapRace runs check --repair against the swap: the
// host dir must be exactly as it was, and no finding may name its entries.
func TestCheckRepairSymlinkSwapRace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mknod of a whiteout, trusted xattrs)")
	}
	u, host := swapUnion(t)
	before := testsupport.Fingerprint(t, host)
	keepSwapping(t, u.upper)

	deadline := time.Now().Add(3 * time.Second)
	runs, clean, repaired := 0, 0, 0
	for ; runs < maxRuns && (time.Now().Before(deadline) || runs < 100); runs++ {
		res, err := Check(u.cfg())
		if err != nil {
			continue
		}
		clean++
		for _, f := range res.Findings {
			if strings.Contains(f.Path, hostSecretName) {
				t.Fatalf("run %d: finding names the host dir's file: %s %s", runs, f.Kind, f.Path)
			}
			if f.Repairable() && f.Repair() == nil {
				repaired++
			}
		}
		if fp := testsupport.Fingerprint(t, host); fp != before {
			t.Fatalf("run %d: check --repair changed the host dir:\nbefore:\n%s\nafter:\n%s", runs, before, fp)
		}
	}
	t.Logf("%d checks, %d without error, %d repairs", runs, clean, repaired)
	if clean == 0 {
		t.Errorf("no check finished: the swap should make some fail, not all")
	}
}

// TestChangesSymlinkSwapRace lists the changes against the swap: the host
// dir's uniquely named file must never be in a listing.
func TestChangesSymlinkSwapRace(t *testing.T) {
	u, _ := swapUnion(t)
	keepSwapping(t, u.upper)

	deadline := time.Now().Add(3 * time.Second)
	runs, clean := 0, 0
	for ; runs < maxRuns && (time.Now().Before(deadline) || runs < 100); runs++ {
		cs, err := Changes(u.cfg())
		if err == nil {
			clean++
		}
		for _, c := range cs {
			if strings.Contains(c.Path, hostSecretName) {
				t.Fatalf("run %d: the host dir's file is in the listing: %s", runs, c)
			}
		}
	}
	t.Logf("%d listings, %d without error", runs, clean)
	if clean == 0 {
		t.Errorf("no listing finished: the swap should make some fail, not all")
	}
}
