package inspect

import (
	"os"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/metacopy"
	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/unionfs"
)

// damagedUnion makes an upper through real unionfsd and kernel-overlay
// mounts, then damages it the ways a crash or a foreign tool does.
func damagedUnion(t *testing.T) *union {
	u := newUnion(t, 1)
	l := u.lowers[0]
	writeFile(t, l+"/etc/hosts", "127.0.0.1 localhost\n")
	writeFile(t, l+"/etc/motd", "hello\n")
	writeFile(t, l+"/tmp/x", "x\n")
	writeFile(t, l+"/d/old", "old\n")
	writeFile(t, l+"/k/file", "k\n")
	unmount := u.mountUnionfsd(t)
	must(t, os.WriteFile(u.m("etc/hosts"), []byte("10.0.0.1 db\n"), 0o644))
	must(t, os.Remove(u.m("tmp/x")))
	must(t, os.RemoveAll(u.m("d")))
	must(t, os.Mkdir(u.m("d"), 0o755))
	unmount()

	// Kernel overlay on the same upper writes its own format.
	unmount = u.mountOverlay(t)
	must(t, os.Remove(u.m("etc/motd")))
	must(t, os.RemoveAll(u.m("k")))
	must(t, os.Mkdir(u.m("k"), 0o755))
	unmount()

	writeFile(t, u.work+"/cow-tmp-4242-1", "half a copy") // copy-up cut short
	writeFile(t, u.upper+"/etc/.wh.hosts", "")            // create over a whiteout cut short
	writeFile(t, u.upper+"/.wh.ghost", "")                // a tool whiting out what is not there
	writeFile(t, u.upper+"/mc", "x")                      // metacopy whose lower went away
	must(t, unix.Setxattr(u.upper+"/mc", metacopy.Xattr(), metacopy.Value("gone/file"), 0))
	return u
}

func kinds(fs []*Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind+" "+strings.TrimPrefix(f.Path, "/"))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestCheckRepairsDamagedUpper finds each kind of damage, repairs what it
// can, and the repaired union shows exactly what the damaged one showed.
func TestCheckRepairsDamagedUpper(t *testing.T) {
	u := damagedUnion(t)
	upperBefore := testsupport.ListTree(t, u.upper)
	res, err := Check(u.cfg())
	must(t, err)
	rel := func(p string) string { return strings.TrimPrefix(p, u.base+"/") }
	want := []string{
		KindTempFile + " " + rel(u.work) + "/cow-tmp-4242-1",
		KindBesideEntry + " " + rel(u.upper) + "/etc/.wh.hosts",
		KindHidesNothing + " " + rel(u.upper) + "/.wh.ghost",
		KindMetacopyGone + " " + rel(u.upper) + "/mc",
		KindOverlayFormat + " " + rel(u.upper) + "/etc/motd",
		KindOverlayFormat + " " + rel(u.upper) + "/k",
	}
	sort.Strings(want)
	got := strings.ReplaceAll(kinds(res.Findings), strings.TrimPrefix(u.base, "/")+"/", "")
	if got != strings.Join(want, "\n") {
		t.Fatalf("findings:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if after := testsupport.ListTree(t, u.upper); strings.Join(after, "\n") != strings.Join(upperBefore, "\n") {
		t.Errorf("check without repair changed the upper:\n%q\n%q", upperBefore, after)
	}
	unmount := u.mountUnionfsd(t) // (mounting clears the temp file too)
	before := testsupport.ListTree(t, u.mnt)
	unmount()

	for _, f := range res.Findings {
		err := f.Repair()
		if f.Kind == KindMetacopyGone {
			if err == nil || f.Repairable() {
				t.Errorf("metacopy-lower-gone was \"repaired\": it needs a person")
			}
			continue
		}
		if err != nil {
			t.Errorf("repair %s %s: %v", f.Kind, f.Path, err)
		}
	}
	res, err = Check(u.cfg())
	must(t, err)
	if got := kinds(res.Findings); got != KindMetacopyGone+" "+strings.TrimPrefix(u.upper, "/")+"/mc" {
		t.Errorf("after repair: %q, want only the metacopy finding", got)
	}
	assertOCIOnly(t, u)
	u.mountUnionfsd(t)
	if after := testsupport.ListTree(t, u.mnt); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("repair changed the merged view:\nbefore %q\nafter  %q", before, after)
	}
}

// assertOCIOnly checks the converted markers: no char 0/0, no opaque xattr.
func assertOCIOnly(t *testing.T, u *union) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(u.upper+"/etc/motd", &st); err == nil {
		t.Errorf("char whiteout etc/motd still there (mode %o)", st.Mode)
	}
	if _, err := os.Lstat(u.upper + "/etc/.wh.motd"); err != nil {
		t.Errorf("no OCI whiteout for etc/motd: %v", err)
	}
	if _, err := os.Lstat(u.upper + "/k/.wh..wh..opq"); err != nil {
		t.Errorf("no opaque marker in k: %v", err)
	}
	if _, err := unix.Lgetxattr(u.upper+"/k", "trusted.overlay.opaque", nil); err == nil {
		t.Error("k still has trusted.overlay.opaque")
	}
}

// TestCheckCleanUppers: uppers written by normal use have nothing to report,
// in either format.
func TestCheckCleanUppers(t *testing.T) {
	for _, mnt := range []string{"unionfsd", "overlay"} {
		t.Run(mnt, func(t *testing.T) {
			u := newUnion(t, 1)
			writeFile(t, u.lowers[0]+"/a/b", "b")
			writeFile(t, u.lowers[0]+"/c", "c")
			if mnt == "unionfsd" {
				u.mountUnionfsd(t)
			} else {
				u.mountOverlay(t)
			}
			must(t, os.RemoveAll(u.m("a")))
			must(t, os.Mkdir(u.m("a"), 0o755))
			must(t, os.Remove(u.m("c")))
			writeFile(t, u.m("c"), "new c")
			must(t, os.Remove(u.m("c")))
			res, err := Check(u.cfg())
			must(t, err)
			if len(res.Findings) > 0 {
				t.Errorf("clean %s upper: %s", mnt, kinds(res.Findings))
			}
		})
	}
}

// TestCheckWithoutLowers skips the checks that need them and says so.
func TestCheckWithoutLowers(t *testing.T) {
	u := newUnion(t, 1)
	writeFile(t, u.upper+"/.wh.ghost", "")
	writeFile(t, u.upper+"/x", "")
	writeFile(t, u.upper+"/.wh.x", "")
	res, err := Check(unionfs.Config{Upper: u.upper, Work: u.work})
	must(t, err)
	if got := kinds(res.Findings); got != KindBesideEntry+" "+strings.TrimPrefix(u.upper, "/")+"/.wh.x" {
		t.Errorf("findings %q", got)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "no lower layers") {
		t.Errorf("notes %q", res.Notes)
	}
}

// TestCheckWorkdirOnOtherFilesystem reports a workdir copy-up cannot use.
func TestCheckWorkdirOnOtherFilesystem(t *testing.T) {
	testsupport.RequireFUSE(t)
	u := newUnion(t, 1)
	must(t, unix.Mount("tmpfs", u.work, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(u.work, unix.MNT_DETACH) })
	res, err := Check(u.cfg())
	must(t, err)
	if len(res.Findings) != 1 || res.Findings[0].Kind != KindWorkdirFS || res.Findings[0].Repairable() {
		t.Errorf("findings %s", kinds(res.Findings))
	}
}
