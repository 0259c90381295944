package inspect

import (
	"os"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/unionfs"
)

// lowerFixture fills two lowers: lower0 on top of lower1.
func lowerFixture(t *testing.T, u *union) {
	writeFile(t, u.lowers[1]+"/etc/hosts", "127.0.0.1 localhost\n")
	writeFile(t, u.lowers[1]+"/etc/motd", "hello\n")
	writeFile(t, u.lowers[0]+"/tmp/x", "x\n")
	writeFile(t, u.lowers[1]+"/d/old", "old\n")
	writeFile(t, u.lowers[1]+"/keep/a", "a\n")
}

// TestChangesOnMount makes changes through a unionfsd mount and lists them.
func TestChangesOnMount(t *testing.T) {
	u := newUnion(t, 2)
	lowerFixture(t, u)
	u.mountUnionfsd(t)
	must(t, os.WriteFile(u.m("etc/hosts"), []byte("10.0.0.1 db\n"), 0o644)) // C /etc, C /etc/hosts
	must(t, os.Remove(u.m("tmp/x")))                                        // C /tmp, D /tmp/x
	must(t, os.RemoveAll(u.m("d")))
	must(t, os.Mkdir(u.m("d"), 0o755))    // O /d
	writeFile(t, u.m("d/old"), "new\n")   // A /d/old: nothing below an opaque dir shows
	writeFile(t, u.m("new/file"), "n")    // A /new, A /new/file
	must(t, os.Chmod(u.m("keep"), 0o700)) // C /keep (metadata)

	got, err := Changes(u.cfg())
	must(t, err)
	want := strings.Join([]string{
		"O /d", "A /d/old", "C /etc", "C /etc/hosts", "C /keep", "A /new", "A /new/file", "C /tmp", "D /tmp/x",
	}, "\n")
	if changeLines(got) != want {
		t.Errorf("changes:\n%s\nwant:\n%s", changeLines(got), want)
	}
}

// TestChangesKernelOverlayUpper lists an upper written by kernel overlay:
// char 0/0 whiteouts and opaque xattrs.
func TestChangesKernelOverlayUpper(t *testing.T) {
	u := newUnion(t, 2)
	lowerFixture(t, u)
	unmount := u.mountOverlay(t)
	must(t, os.Remove(u.m("etc/motd")))
	must(t, os.RemoveAll(u.m("d")))
	must(t, os.Mkdir(u.m("d"), 0o755))
	writeFile(t, u.m("added"), "a")
	unmount()

	got, err := Changes(unionfs.Config{Upper: u.upper, Lowers: u.lowers})
	must(t, err)
	want := "A /added\nO /d\nC /etc\nD /etc/motd"
	if changeLines(got) != want {
		t.Errorf("changes:\n%s\nwant:\n%s", changeLines(got), want)
	}
}

// TestChangesEdgeCases: no lowers, a stray whiteout beside its entry, the
// workdir and reserved names inside the upper, and a read-only union.
func TestChangesEdgeCases(t *testing.T) {
	u := newUnion(t, 1)
	writeFile(t, u.lowers[0]+"/a", "a")
	writeFile(t, u.upper+"/a", "changed")
	writeFile(t, u.upper+"/.wh.a", "") // beside its entry: void
	writeFile(t, u.upper+"/"+unionfs.DefaultWorkName+"/cow-tmp-1", "")
	writeFile(t, u.upper+"/.wh..wh.other", "")

	got, err := Changes(unionfs.Config{Upper: u.upper, Lowers: u.lowers})
	must(t, err)
	if changeLines(got) != "C /a" {
		t.Errorf("with lowers: %q, want C /a", changeLines(got))
	}
	got, err = Changes(unionfs.Config{Upper: u.upper})
	must(t, err)
	if changeLines(got) != "A /a" {
		t.Errorf("without lowers: %q, want A /a", changeLines(got))
	}
	if _, err := Changes(unionfs.Config{Lowers: u.lowers}); err == nil {
		t.Error("read-only union: no error")
	}
}

// TestChangesAndCheckCloseTheirLayers: repeated calls in one process leave
// no descriptors behind (each used to leak one per layer).
func TestChangesAndCheckCloseTheirLayers(t *testing.T) {
	u := newUnion(t, 2)
	writeFile(t, u.upper+"/a", "a")
	openFds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		must(t, err)
		return len(ents)
	}
	before := openFds()
	for range 50 {
		_, err := Changes(u.cfg())
		must(t, err)
		_, err = Check(u.cfg())
		must(t, err)
	}
	if after := openFds(); after > before+5 {
		t.Errorf("%d descriptors open after 50 Changes and Check, %d before", after, before)
	}
}
