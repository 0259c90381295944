package cow

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCopyUpRegularFile(t *testing.T) { forBothStagings(t, testCopyUpRegularFile) }

func testCopyUpRegularFile(t *testing.T, named bool) {
	requireRoot(t)
	f := newFixture(t, Options{})
	f.eng.named = named
	src := f.srcPath("file")
	content := []byte("hello copy-up\n")
	if err := os.WriteFile(src, content, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "user.color", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "trusted.note", []byte("t"), 0); err != nil {
		t.Fatal(err)
	}
	setMeta(t, src, 1234, 5678)

	pre := lstat(t, src)
	st, err := f.eng.copyUpPaths(src, f.dstPath("file"), -1)
	if err != nil {
		t.Fatal(err)
	}
	dst := f.dstPath("file")
	assertSameMeta(t, pre, dst)
	if want := lstat(t, dst); st != want {
		t.Errorf("returned stat %+v, want lstat of dst %+v", st, want)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("content %q (err %v), want %q", got, err, content)
	}
	if v := xattr(t, dst, "user.color"); v != "blue" {
		t.Errorf("user.color = %q, want blue", v)
	}
	if v := xattr(t, dst, "trusted.note"); v != "t" {
		t.Errorf("trusted.note = %q, want t", v)
	}
	if lstat(t, src).Ino == st.Ino {
		t.Error("dst is the same inode as src")
	}
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpSetuidAndCapabilitySurviveChown(t *testing.T) {
	forBothStagings(t, testCopyUpSetuidAndCapabilitySurviveChown)
}

func testCopyUpSetuidAndCapabilitySurviveChown(t *testing.T, named bool) {
	requireRoot(t)
	f := newFixture(t, Options{})
	f.eng.named = named
	src := f.srcPath("suid")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	setMeta(t, src, 1234, 5678)
	// vfs_cap_data, little endian: magic = revision 2 | effective, then
	// permitted = 1<<13 (CAP_NET_RAW), inheritable 0, and a zero upper half.
	capv := []byte{0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	haveCap := unix.Lsetxattr(src, "security.capability", capv, 0) == nil
	if err := unix.Chmod(src, 0o6755); err != nil { // after chown, which clears it
		t.Fatal(err)
	}

	dst := f.dstPath("suid")
	pre := lstat(t, src)
	if _, err := f.eng.copyUpPaths(src, dst, -1); err != nil {
		t.Fatal(err)
	}
	assertSameMeta(t, pre, dst)
	if m := lstat(t, dst).Mode; m&0o7777 != 0o6755 {
		t.Errorf("mode %#o, want setuid+setgid 06755", m&0o7777)
	}
	if !haveCap {
		t.Log("filesystem refused security.capability; capability part not checked")
		return
	}
	if got := xattr(t, dst, "security.capability"); got != xattr(t, src, "security.capability") {
		t.Errorf("security.capability lost or changed: %x", got)
	}
}

func TestCopyUpSymlink(t *testing.T) {
	requireRoot(t)
	f := newFixture(t, Options{})
	src := f.srcPath("link")
	if err := os.Symlink("../some/where", src); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "trusted.tag", []byte("lnk"), 0); err != nil {
		t.Fatal(err)
	}
	setMeta(t, src, 1234, 5678)
	dst := f.dstPath("link")
	pre := lstat(t, src)
	if _, err := f.eng.copyUpPaths(src, dst, -1); err != nil {
		t.Fatal(err)
	}
	assertSameMeta(t, pre, dst)
	if target, err := os.Readlink(dst); err != nil || target != "../some/where" {
		t.Errorf("readlink = %q, %v", target, err)
	}
	if v := xattr(t, dst, "trusted.tag"); v != "lnk" {
		t.Errorf("trusted.tag = %q", v)
	}
}

func TestCopyUpDirectoryWithoutChildren(t *testing.T) {
	requireRoot(t)
	f := newFixture(t, Options{})
	src := f.srcPath("dir")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "child"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "user.dir", []byte("d"), 0); err != nil {
		t.Fatal(err)
	}
	setMeta(t, src, 1234, 5678)
	if err := unix.Chmod(src, 0o3775); err != nil {
		t.Fatal(err)
	}
	dst := f.dstPath("dir")
	pre := lstat(t, src)
	if _, err := f.eng.copyUpPaths(src, dst, -1); err != nil {
		t.Fatal(err)
	}
	assertSameMeta(t, pre, dst)
	if m := lstat(t, dst).Mode & 0o7777; m != 0o3775 {
		t.Errorf("dir mode %#o, want 03775", m)
	}
	ents, err := os.ReadDir(dst)
	if err != nil || len(ents) != 0 {
		t.Errorf("copied dir has %d entries (err %v), want none", len(ents), err)
	}
	if v := xattr(t, dst, "user.dir"); v != "d" {
		t.Errorf("user.dir = %q", v)
	}
}

func TestCopyUpSpecialFiles(t *testing.T) {
	requireRoot(t)
	f := newFixture(t, Options{})
	cases := []struct {
		name string
		mode uint32
		dev  int
	}{
		{"fifo", unix.S_IFIFO | 0o620, 0},
		{"sock", unix.S_IFSOCK | 0o700, 0},
		{"chr", unix.S_IFCHR | 0o666, int(unix.Mkdev(1, 3))},
		{"blk", unix.S_IFBLK | 0o660, int(unix.Mkdev(7, 200))},
		{"whiteout", unix.S_IFCHR | 0o000, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := f.srcPath(c.name)
			if err := unix.Mknod(src, c.mode, c.dev); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(src, c.mode&0o7777); err != nil { // undo umask
				t.Fatal(err)
			}
			setMeta(t, src, 1234, 5678)
			dst := f.dstPath(c.name)
			pre := lstat(t, src)
			st, err := f.eng.copyUpPaths(src, dst, -1)
			if err != nil {
				t.Fatal(err)
			}
			assertSameMeta(t, pre, dst)
			if st.Mode != c.mode {
				t.Errorf("mode %#o, want %#o", st.Mode, c.mode)
			}
		})
	}
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpSparseFileStaysSparse(t *testing.T) {
	f := newFixture(t, Options{})
	src := f.srcPath("sparse")
	makeSparse(t, src, 64<<20, 1<<20, 40<<20)
	srcLayout := dataLayout(t, src)
	if len(srcLayout) != 2 {
		t.Skipf("the filesystem of %s does not report holes (layout %v); run on ext4/xfs/btrfs/tmpfs", f.src, srcLayout)
	}
	dst := f.dstPath("sparse")
	st, err := f.eng.copyUpPaths(src, dst, -1)
	if err != nil {
		t.Fatal(err)
	}
	sst := lstat(t, src)
	if st.Size != sst.Size {
		t.Errorf("size %d, want %d", st.Size, sst.Size)
	}
	// 64 MiB fully allocated would be 131072 blocks; two 8 KiB extents are 32.
	if st.Blocks > sst.Blocks+16 {
		t.Errorf("dst uses %d blocks, src %d: holes were filled", st.Blocks, sst.Blocks)
	}
	if got := dataLayout(t, dst); fmt.Sprint(got) != fmt.Sprint(srcLayout) {
		t.Errorf("data layout %v, want %v", got, srcLayout)
	}
	assertSameContent(t, src, dst)
}

// TestCopyUpSparseAcrossFilesystems exercises the userspace fallback (the
// kernel refuses copy_file_range between ext4 and tmpfs) and its holes.
func TestCopyUpSparseAcrossFilesystems(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	eng, err := New(filepath.Join(mnt, "work"), Options{Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	src := filepath.Join(t.TempDir(), "sparse")
	makeSparse(t, src, 16<<20, 0, 9<<20)
	dst := filepath.Join(mnt, "sparse")
	st, err := eng.copyUpPaths(src, dst, -1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != 16<<20 || st.Blocks > 64 {
		t.Errorf("size %d blocks %d, want size %d and few blocks", st.Size, st.Blocks, 16<<20)
	}
	assertSameContent(t, src, dst)
	assertNoLeftovers(t, eng)
}

func TestCopyUpTruncated(t *testing.T) {
	content := make([]byte, 300_000)
	rand.Read(content)
	for _, tc := range []struct {
		name string
		size int64
		want []byte
	}{
		{"zero", 0, nil},
		{"prefix", 1000, content[:1000]},
		{"all", -1, content},
		{"extend", int64(len(content)) + 5000, append(append([]byte{}, content...), make([]byte, 5000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			src := f.srcPath("f")
			if err := os.WriteFile(src, content, 0o604); err != nil {
				t.Fatal(err)
			}
			dst := f.dstPath("f")
			st, err := f.eng.copyUpPaths(src, dst, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(len(tc.want)) || !bytes.Equal(got, tc.want) {
				t.Errorf("size %d, content match %v; want size %d", st.Size, bytes.Equal(got, tc.want), len(tc.want))
			}
			if st.Mode&0o7777 != 0o604 {
				t.Errorf("mode %#o, want 0604", st.Mode&0o7777)
			}
			if srcSt := lstat(t, src); srcSt.Size != int64(len(content)) {
				t.Errorf("source changed: size %d", srcSt.Size)
			}
		})
	}
}

func TestCopyUpExistingDst(t *testing.T) {
	f := newFixture(t, Options{})
	src, dst := f.srcPath("f"), f.dstPath("f")
	if err := os.WriteFile(src, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := f.eng.copyUpPaths(src, dst, -1)
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("err = %v, want EEXIST", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "keep" {
		t.Errorf("dst changed to %q", got)
	}
	// A dangling symlink counts as existing too.
	if err := os.Symlink("nowhere", f.dstPath("l")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.copyUpPaths(src, f.dstPath("l"), -1); !errors.Is(err, unix.EEXIST) {
		t.Errorf("over dangling symlink: err = %v, want EEXIST", err)
	}
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpMissingSource(t *testing.T) {
	f := newFixture(t, Options{})
	_, err := f.eng.copyUpPaths(f.srcPath("nope"), f.dstPath("nope"), -1)
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "copy-up nope") {
		t.Errorf("err = %v, want ENOENT naming the source", err)
	}
	assertMissing(t, f.dstPath("nope"))
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpMissingDstParent(t *testing.T) {
	f := newFixture(t, Options{})
	src := f.srcPath("f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.copyUpPaths(src, f.dstPath("no/such/f"), -1); !errors.Is(err, unix.ENOENT) {
		t.Errorf("err = %v, want ENOENT", err)
	}
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpUnreadableSource(t *testing.T) {
	f := rootlessFixture(t)
	src := f.srcPath("secret")
	if err := os.WriteFile(src, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	asUser(t, 65534, 65534, func() { _, err = f.eng.copyUpPaths(src, f.dstPath("secret"), -1) })
	if !errors.Is(err, unix.EACCES) {
		t.Errorf("err = %v, want EACCES", err)
	}
	assertMissing(t, f.dstPath("secret"))
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpRootlessKeepsOwnIDs(t *testing.T) {
	f := rootlessFixture(t)
	src := f.srcPath("pub")
	if err := os.WriteFile(src, []byte("p"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, "trusted.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	var err error
	var st unix.Stat_t
	asUser(t, 65534, 65534, func() { st, err = f.eng.copyUpPaths(src, f.dstPath("pub"), -1) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != 65534 || st.Gid != 65534 || st.Mode&0o7777 != 0o644 {
		t.Errorf("owner %d:%d mode %#o, want 65534:65534 0644", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if v := xattr(t, f.dstPath("pub"), "user.k"); v != "v" {
		t.Errorf("user.k = %q", v)
	}
}

func TestCopyUpSkipXattr(t *testing.T) {
	f := newFixture(t, Options{SkipXattr: func(name string) bool { return strings.HasPrefix(name, "user.internal.") }})
	src := f.srcPath("f")
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"user.internal.a", "user.keep"} {
		if err := unix.Lsetxattr(src, n, []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	dst := f.dstPath("f")
	if _, err := f.eng.copyUpPaths(src, dst, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Lgetxattr(dst, "user.internal.a", nil); err != unix.ENODATA {
		t.Errorf("skipped xattr: getxattr err = %v, want ENODATA", err)
	}
	if v := xattr(t, dst, "user.keep"); v != "1" {
		t.Errorf("user.keep = %q", v)
	}
}

func TestNewCleansStaleEntries(t *testing.T) {
	work := filepath.Join(t.TempDir(), "work")
	if err := os.MkdirAll(filepath.Join(work, TempPrefix+"99-1", "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{TempPrefix + "99-2", "keep-me"} {
		if err := os.WriteFile(filepath.Join(work, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := New(work, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	defer eng.Close()
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "keep-me" {
		t.Errorf("workdir entries after New: %v, want only keep-me", ents)
	}
}

func TestNewCreatesWorkdirAndRejectsFile(t *testing.T) {
	base := t.TempDir()
	work := filepath.Join(base, "w")
	eng, err := New(work, Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()
	if st := lstat(t, work); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o777 != 0o700 {
		t.Errorf("workdir mode %#o, want dir 0700", st.Mode)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file, Options{}); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("New(file) err = %v, want ENOTDIR", err)
	}
	if _, err := eng.copyUpPaths(file, filepath.Join(base, "x"), -1); !errors.Is(err, os.ErrClosed) {
		t.Errorf("CopyUp after Close err = %v, want ErrClosed", err)
	}
}

func TestStage(t *testing.T) {
	f := newFixture(t, Options{Fsync: true})
	dst := f.dstPath("d")
	if err := f.eng.stagePaths(dst, false, buildOpaqueDir); err != nil {
		t.Fatal(err)
	}
	assertOpaqueDir(t, dst)
	// Without replace an existing dst is kept.
	if err := f.eng.stagePaths(dst, false, buildOpaqueDir); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second Stage err = %v, want EEXIST", err)
	}
	// A failing build leaves nothing.
	boom := errors.New("boom")
	err := f.eng.stagePaths(f.dstPath("e"), false, func(tmp string) error {
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	assertMissing(t, f.dstPath("e"))
	assertNoLeftovers(t, f.eng)
}

func TestStageReplace(t *testing.T) {
	f := newFixture(t, Options{})
	mk := map[string]func(p string) error{
		"file":     func(p string) error { return os.WriteFile(p, []byte("old"), 0o644) },
		"emptydir": func(p string) error { return os.Mkdir(p, 0o755) },
		"symlink":  func(p string) error { return os.Symlink("x", p) },
		"missing":  func(p string) error { return nil },
	}
	for name, create := range mk {
		t.Run(name, func(t *testing.T) {
			dst := f.dstPath(name)
			if err := create(dst); err != nil {
				t.Fatal(err)
			}
			if err := f.eng.stagePaths(dst, true, buildOpaqueDir); err != nil {
				t.Fatal(err)
			}
			assertOpaqueDir(t, dst)
			assertNoLeftovers(t, f.eng)
		})
	}
	t.Run("file-over-file", func(t *testing.T) {
		dst := f.dstPath("ff")
		if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := f.eng.stagePaths(dst, true, func(tmp string) error { return os.WriteFile(tmp, []byte("new"), 0o644) })
		if got, _ := os.ReadFile(dst); err != nil || string(got) != "new" {
			t.Errorf("err %v, content %q, want new", err, got)
		}
	})
	t.Run("nonempty-dir", func(t *testing.T) {
		dst := f.dstPath("full")
		if err := os.MkdirAll(filepath.Join(dst, "child"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, build := range []func(string) error{buildOpaqueDir, func(tmp string) error { return os.WriteFile(tmp, nil, 0o644) }} {
			if err := f.eng.stagePaths(dst, true, build); !errors.Is(err, unix.ENOTEMPTY) {
				t.Errorf("err = %v, want ENOTEMPTY", err)
			}
			if _, err := os.Stat(filepath.Join(dst, "child")); err != nil {
				t.Errorf("non-empty dir was touched: %v", err)
			}
			assertNoLeftovers(t, f.eng)
		}
	})
}

func TestCopyUpConcurrent(t *testing.T) {
	f := newFixture(t, Options{})
	const files, workers = 50, 8
	for i := range files {
		if err := os.WriteFile(f.srcPath(fmt.Sprint(i)), bytes.Repeat([]byte{byte(i)}, 10_000+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, files)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				_, err := f.eng.copyUpPaths(f.srcPath(fmt.Sprint(i)), f.dstPath(fmt.Sprint(i)), -1)
				errs <- err
			}
		})
	}
	for i := range files {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range files {
		assertSameContent(t, f.srcPath(fmt.Sprint(i)), f.dstPath(fmt.Sprint(i)))
	}
	assertNoLeftovers(t, f.eng)
}

// TestCopyUpRaceSameDst: racing copy-ups of one file have exactly one winner;
// the others see EEXIST and leave nothing behind.
func TestCopyUpRaceSameDst(t *testing.T) {
	f := newFixture(t, Options{})
	src, dst := f.srcPath("f"), f.dstPath("f")
	if err := os.WriteFile(src, bytes.Repeat([]byte("abc"), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.eng.copyUpPaths(src, dst, -1) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, unix.EEXIST):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d copy-ups succeeded, want exactly 1", wins)
	}
	assertSameContent(t, src, dst)
	assertNoLeftovers(t, f.eng)
}

func TestCopyUpENOSPCLeavesNothing(t *testing.T) { forBothStagings(t, testCopyUpENOSPCLeavesNothing) }

func testCopyUpENOSPCLeavesNothing(t *testing.T, named bool) {
	mnt := mountTmpfs(t, "1m")
	eng, err := New(filepath.Join(mnt, "work"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	eng.named = named
	src := filepath.Join(t.TempDir(), "big")
	data := make([]byte, 4<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(mnt, "big")
	_, err = eng.copyUpPaths(src, dst, -1)
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	assertMissing(t, dst)
	assertNoLeftovers(t, eng)
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Bfree != sfs.Blocks {
		t.Errorf("tmpfs still has %d of %d blocks in use", sfs.Blocks-sfs.Bfree, sfs.Blocks)
	}
}

// TestCopyUpReflink: on a reflink filesystem the copy shares the source's
// blocks (no space used), also when cut to a prefix.
func TestCopyUpReflink(t *testing.T) {
	mnt := mountXFS(t)
	for _, d := range []string{"lower", "upper"} {
		if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := New(filepath.Join(mnt, "work"), Options{Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	content := make([]byte, 8<<20)
	rand.Read(content)
	src := filepath.Join(mnt, "lower", "f")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	for _, size := range []int64{-1, 4096 + 17} {
		before := freeBytes(t, mnt)
		dst := filepath.Join(mnt, "upper", fmt.Sprint("f", size))
		if _, err := eng.copyUpPaths(src, dst, size); err != nil {
			t.Fatal(err)
		}
		unix.Sync()
		if used := before - freeBytes(t, mnt); used > 1<<20 {
			t.Errorf("size %d: copy used %d bytes, want shared extents", size, used)
		}
		want := content
		if size >= 0 {
			want = content[:size]
		}
		if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d: content differs (len %d, err %v)", size, len(got), err)
		}
	}
	assertNoLeftovers(t, eng)
}

// TestCopyUpUsesTmpfile checks that a regular file really goes through the
// unnamed O_TMPFILE path here (the tests of both paths would pass just as
// well if it always fell back to a named file).
func TestCopyUpUsesTmpfile(t *testing.T) {
	requireRoot(t)
	f := newFixture(t, Options{Fsync: true})
	src := f.srcPath("f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	done, err := f.eng.copyUpUnnamedPaths(src, f.dstPath("f"), -1)
	if err != nil || !done {
		t.Fatalf("copyUpUnnamed = %v, %v; want true, nil (O_TMPFILE and /proc work on this machine)", done, err)
	}
	if got, err := os.ReadFile(f.dstPath("f")); err != nil || string(got) != "x" {
		t.Errorf("dst %q, %v", got, err)
	}
	assertNoLeftovers(t, f.eng)
}
