package faults

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestUntarENOSPC extracts, with GNU tar through the mount, an archive
// bigger than the space left in the upper. tar must fail; every file it
// did not report an error for must be complete; every file in the merged
// view must show the size and bytes the upper holds and be a prefix of its
// archive member (nothing but what tar wrote); nothing may be left in the
// workdir. Once space is back the same extraction succeeds and the merged
// view is exactly the archive.
func TestUntarENOSPC(t *testing.T) {
	testsupport.RequireFUSE(t)
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("tar missing: apt-get install tar")
	}
	fsRoot := mountTmpfs(t, 8<<20)
	lower := filepath.Join(t.TempDir(), "lower")
	writeFile(t, filepath.Join(lower, "etc", "keep"), []byte("lower file\n"))
	u := mountUnion(t, lower, filepath.Join(fsRoot, "upper"), filepath.Join(fsRoot, "work"))
	archive, members := writeArchive(t, 60, 64<<10) // 4.7 MiB
	filler := fill(t, fsRoot, 3<<19)

	var stderr string
	within(t, 30*time.Second, "tar -x into the full upper", func() error {
		out, err := exec.Command(tarBin, "-xf", archive, "-C", u.mnt).CombinedOutput()
		stderr = string(out)
		if err == nil {
			return fmt.Errorf("tar succeeded with 1.5 MiB free for 4.7 MiB")
		}
		return nil
	})
	if !strings.Contains(stderr, "No space left on device") {
		t.Fatalf("tar failed, but not for lack of space:\n%s", stderr)
	}
	complete, partial := assertOnlyWhatTarWrote(t, u, members, stderr)
	if complete == 0 || partial+complete == len(members) && partial == 0 {
		t.Errorf("the archive did not run the upper out of space in the middle: %d complete, %d reported failing", complete, partial)
	}
	assertNoStaging(t, u.work)
	u.assertServing(t)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "tar -x once space is back", func() error {
		out, err := exec.Command(tarBin, "-xf", archive, "-C", u.mnt).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	want := map[string]string{"etc": "dir", "etc/keep": fmt.Sprintf("file 11 %s", sum([]byte("lower file\n")))}
	for name, data := range members {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			want[d] = "dir"
		}
		want[name] = fmt.Sprintf("file %d %s", len(data), sum(data))
	}
	assertSameTree(t, "merged view after the second tar", tree(t, u.mnt), want)
	assertNoStaging(t, u.work)
}

// writeArchive writes a tar of n files of size bytes each, spread over a
// few dirs, and returns its path and the members' contents.
func writeArchive(t *testing.T, n, size int) (string, map[string][]byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "files.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	members := map[string][]byte{}
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for d := 0; d < 4; d++ {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("data/d%d/", d), Mode: 0o755, ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("data/d%d/f%03d", i%4, i)
		// Sizes vary so that the space runs out inside some file.
		data := randomBytes(int64(100+i), size+i*517)
		members[name] = data
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p, members
}

// assertOnlyWhatTarWrote checks the merged view after a failed extraction
// and returns how many members are complete and how many tar reported.
func assertOnlyWhatTarWrote(t *testing.T, u *union, members map[string][]byte, tarOut string) (complete, reported int) {
	t.Helper()
	failed := map[string]bool{}
	for _, line := range strings.Split(tarOut, "\n") {
		// "/usr/bin/tar: data/d1/f013: Cannot write: No space left on device",
		// "/usr/bin/tar: data/d1/f013: Wrote only 4096 of 10240 bytes".
		if f := strings.SplitN(line, ": ", 3); len(f) == 3 && members[f[1]] != nil {
			failed[f[1]] = true
		}
	}
	merged := tree(t, u.mnt)
	for name, data := range members {
		got, ok := merged[name]
		if !ok {
			if !failed[name] {
				t.Errorf("%s is missing, and tar reported no error for it", name)
			}
			continue
		}
		if up := tree(t, filepath.Dir(filepath.Join(u.upper, name)))[filepath.Base(name)]; up != got {
			t.Errorf("%s: the mount shows %s, the upper holds %s", name, got, up)
		}
		content := readFile(t, u.m(name))
		switch {
		case !bytes.HasPrefix(data, content):
			t.Errorf("%s: %d bytes that are not the start of the member (%d bytes)", name, len(content), len(data))
		case len(content) == len(data):
			complete++
		case !failed[name]:
			t.Errorf("%s: %d of %d bytes, and tar reported no error for it", name, len(content), len(data))
		}
	}
	for name := range merged {
		if strings.HasPrefix(name, "data/") && members[name] == nil && merged[name] != "dir" {
			t.Errorf("merged view shows %s (%s), which is no member", name, merged[name])
		}
	}
	return complete, len(failed)
}
