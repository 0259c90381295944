package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
)

// tarNames lists the entry names of a tar stream.
func tarNames(t *testing.T, r io.Reader) string {
	t.Helper()
	tr := tar.NewReader(r)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// TestDiffCLI lists a live mount's changes by mountpoint and by upper,
// writes them as a layer tar, and lists them again after the mount is gone.
func TestDiffCLI(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	pid := mountBackground(t, b, b.up+":"+b.l2+":"+b.l1, b.mnt)
	if err := os.WriteFile(b.mnt+"/a", []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(b.mnt + "/b"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.mnt+"/new", 0o755); err != nil {
		t.Fatal(err)
	}
	want := "C /a\nD /b\nA /new\n"
	if got := runOK(t, "diff", b.mnt); got != want {
		t.Errorf("diff MNT:\n%s\nwant:\n%s", got, want)
	}
	if got := runOK(t, "diff", b.up); got != want {
		t.Errorf("diff UPPER of a live mount:\n%s\nwant:\n%s", got, want)
	}
	tarFile := b.base + "/changes.tar"
	if got := runOK(t, "diff", "--tar", tarFile, b.mnt); got != want {
		t.Errorf("diff --tar FILE printed:\n%s\nwant:\n%s", got, want)
	}
	f, err := os.Open(tarFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := tarNames(t, f); got != ".wh.b a new/" {
		t.Errorf("tar entries %q, want \".wh.b a new/\"", got)
	}
	if got := tarNames(t, bytes.NewReader([]byte(runOK(t, "diff", "--tar", "-", b.mnt)))); got != ".wh.b a new/" {
		t.Errorf("diff --tar - entries %q", got)
	}
	assertOneErrorLine(t, runCLI(t, runOpts{}, "diff", b.mnt+"/dir"), 1, b.mnt+"/dir", "inside the union mounted at "+b.mnt)
	r := runCLI(t, runOpts{}, "diff", "--lowers", b.l1, b.mnt)
	if r.code != exitUsage {
		t.Errorf("diff --lowers MNT: exit %d (%q), want a usage error", r.code, r.stderr)
	}

	stopDaemon(t, pid)
	if got := runOK(t, "diff", "--lowers", b.l2+":"+b.l1, b.up); got != want {
		t.Errorf("diff --lowers UPPER:\n%s\nwant:\n%s", got, want)
	}
	r = runCLI(t, runOpts{}, "diff", b.up)
	if r.code != 0 || r.stdout != "A /a\nD /b\nA /new\n" || !strings.Contains(r.stderr, "warning: "+b.up+": no lower layers known") {
		t.Errorf("diff UPPER without lowers: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	assertNothingLeft(t, b)
}

// TestDiffCLIReadOnlyAndBadInput: a read-only union has no changes; a
// missing dir is one error line.
func TestDiffCLIReadOnlyAndBadInput(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	pid := mountBackground(t, b, b.l2+"=RO:"+b.l1+"=RO", b.mnt)
	assertOneErrorLine(t, runCLI(t, runOpts{}, "diff", b.mnt), 1, b.mnt, "read-only union")
	stopDaemon(t, pid)
	assertOneErrorLine(t, runCLI(t, runOpts{}, "diff", b.base+"/nope"), 1, b.base+"/nope", "no such file or directory")
	assertNothingLeft(t, b)
}
