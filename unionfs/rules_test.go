package unionfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/internal/xattr"
)

// ruleCase is one semantic rule: layers set up, an action on the mount, and
// the exact merged view and upper contents that must follow. Lower layers
// are fingerprinted before and after: no rule may touch them.
type ruleCase struct {
	name   string
	setup  func(t *testing.T, tu *testUnion)
	action func(t *testing.T, tu *testUnion)
	merged []string
	upper  []string
}

func runRules(t *testing.T, cases []ruleCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tu := newLayers(t, 2)
			if c.setup != nil {
				c.setup(t, tu)
			}
			before := []string{testsupport.Fingerprint(t, tu.lowers[0]), testsupport.Fingerprint(t, tu.lowers[1])}
			tu.mount(t, nil)
			if c.action != nil {
				c.action(t, tu)
			}
			assertTree(t, "merged", tu.mnt, c.merged)
			assertTree(t, "upper", tu.upper, c.upper)
			for i, l := range tu.lowers {
				if testsupport.Fingerprint(t, l) != before[i] {
					t.Errorf("lower %d was modified", i)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t *testing.T, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func TestLookupAndMerge(t *testing.T) {
	runRules(t, []ruleCase{{
		name: "top layer wins, dirs merge",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/f", "bottom")
			writeFile(t, tu.lowers[0]+"/f", "top")
			writeFile(t, tu.lowers[1]+"/d/b", "b")
			writeFile(t, tu.lowers[0]+"/d/a", "a")
			writeFile(t, tu.upper+"/d/u", "u")
		},
		merged: []string{"f = top", "d/", "d/a = a", "d/b = b", "d/u = u"},
		upper:  []string{"d/", "d/u = u"},
	}, {
		name: "file in a higher layer hides a lower dir",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/x/inner", "i")
			writeFile(t, tu.lowers[0]+"/x", "file")
		},
		merged: []string{"x = file"},
		upper:  []string{},
	}, {
		name: "OCI opaque marker cuts the merge",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/old", "o")
			writeFile(t, tu.lowers[0]+"/d/.wh..wh..opq", "")
			writeFile(t, tu.lowers[0]+"/d/new", "n")
		},
		merged: []string{"d/", "d/new = n"},
		upper:  []string{},
	}, {
		name: "overlay opaque xattrs cut the merge",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/old", "o")
			writeFile(t, tu.lowers[1]+"/e/old", "o")
			writeFile(t, tu.lowers[0]+"/d/new", "n")
			writeFile(t, tu.lowers[0]+"/e/new", "n")
			must(t, unix.Setxattr(tu.lowers[0]+"/d", "trusted.overlay.opaque", []byte("y"), 0))
			must(t, unix.Setxattr(tu.lowers[0]+"/e", "user.overlay.opaque", []byte("y"), 0))
		},
		merged: []string{"d/", "d/new = n", "e/", "e/new = n"},
		upper:  []string{},
	}, {
		name: "lower whiteouts in both formats hide names below",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/oci", "x")
			writeFile(t, tu.lowers[1]+"/ovl", "x")
			writeFile(t, tu.lowers[1]+"/dir/x", "x")
			writeFile(t, tu.lowers[1]+"/keep", "k")
			writeFile(t, tu.lowers[0]+"/.wh.oci", "")
			writeFile(t, tu.lowers[0]+"/.wh.dir", "")
			overlayWhiteout(t, tu.lowers[0]+"/ovl")
		},
		merged: []string{"keep = k"},
		upper:  []string{},
	}})
}

func TestWhiteoutNamesAreHidden(t *testing.T) {
	tu := newLayers(t, 2)
	writeFile(t, tu.lowers[0]+"/.wh.gone", "")
	writeFile(t, tu.lowers[0]+"/d/.wh..wh..opq", "")
	tu.mount(t, nil)
	for _, p := range []string{".wh.gone", "d/.wh..wh..opq", ".wh..wh.unionfsd.work"} {
		if _, err := os.Lstat(tu.m(p)); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("lstat %s: %v, want ENOENT", p, err)
		}
	}
	wantErrno(t, os.WriteFile(tu.m(".wh.x"), nil, 0o644), syscall.EINVAL)
	wantErrno(t, os.Mkdir(tu.m(".wh.d"), 0o755), syscall.EINVAL)
	wantErrno(t, os.Symlink("t", tu.m(".wh.l")), syscall.EINVAL)
	writeFile(t, tu.m("f"), "f")
	wantErrno(t, os.Rename(tu.m("f"), tu.m(".wh.f")), syscall.EINVAL)
}

func TestRemoval(t *testing.T) {
	runRules(t, []ruleCase{{
		name:  "unlink a lower file writes a whiteout",
		setup: func(t *testing.T, tu *testUnion) { writeFile(t, tu.lowers[1]+"/d/f", "f") },
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.Remove(tu.m("d/f")))
		},
		merged: []string{"d/"},
		upper:  []string{"d/", "d/.wh.f = "},
	}, {
		name: "unlink an upper-only file leaves no whiteout",
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.WriteFile(tu.m("n"), []byte("n"), 0o644))
			must(t, os.Remove(tu.m("n")))
		},
		merged: []string{},
		upper:  []string{},
	}, {
		name:  "unlink a copied-up file keeps hiding the lower one",
		setup: func(t *testing.T, tu *testUnion) { writeFile(t, tu.lowers[0]+"/f", "f") },
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.WriteFile(tu.m("f"), []byte("changed"), 0o644))
			must(t, os.Remove(tu.m("f")))
		},
		merged: []string{},
		upper:  []string{".wh.f = "},
	}, {
		name:  "rmdir a lower dir writes a whiteout",
		setup: func(t *testing.T, tu *testUnion) { mkdirAll(t, tu.lowers[1]+"/d") },
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.Remove(tu.m("d")))
		},
		merged: []string{},
		upper:  []string{".wh.d = "},
	}, {
		name: "rmdir of a non-empty merged dir fails",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/f", "f")
		},
		action: func(t *testing.T, tu *testUnion) {
			wantErrno(t, os.Remove(tu.m("d")), syscall.ENOTEMPTY)
		},
		merged: []string{"d/", "d/f = f"},
		upper:  []string{},
	}, {
		name: "rm -rf of a merged dir",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/a", "a")
			writeFile(t, tu.lowers[0]+"/d/b/c", "c")
		},
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.RemoveAll(tu.m("d")))
		},
		merged: []string{},
		upper:  []string{".wh.d = "},
	}, {
		name: "rmdir then mkdir makes the dir opaque",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/old", "o")
		},
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.RemoveAll(tu.m("d")))
			must(t, os.Mkdir(tu.m("d"), 0o755))
			must(t, os.WriteFile(tu.m("d/new"), []byte("n"), 0o644))
		},
		merged: []string{"d/", "d/new = n"},
		upper:  []string{"d/", "d/.wh..wh..opq = ", "d/new = n"},
	}, {
		name:  "a file created over a whiteout replaces it",
		setup: func(t *testing.T, tu *testUnion) { writeFile(t, tu.lowers[0]+"/f", "old") },
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.Remove(tu.m("f")))
			must(t, os.WriteFile(tu.m("f"), []byte("new"), 0o644))
		},
		merged: []string{"f = new"},
		upper:  []string{"f = new"},
	}})
}

func TestCopyUpTriggers(t *testing.T) {
	lowerFile := func(t *testing.T, tu *testUnion) { writeFile(t, tu.lowers[1]+"/d/f", "data") }
	copied := []string{"d/", "d/f = data"}
	runRules(t, []ruleCase{{
		name: "open for write", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) {
			f, err := os.OpenFile(tu.m("d/f"), os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.WriteString("+")
			must(t, err)
			must(t, f.Close())
		},
		merged: []string{"d/", "d/f = data+"}, upper: []string{"d/", "d/f = data+"},
	}, {
		name: "O_TRUNC", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.WriteFile(tu.m("d/f"), []byte("x"), 0o644))
		},
		merged: []string{"d/", "d/f = x"}, upper: []string{"d/", "d/f = x"},
	}, {
		name: "truncate", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) { must(t, os.Truncate(tu.m("d/f"), 2)) },
		merged: []string{"d/", "d/f = da"}, upper: []string{"d/", "d/f = da"},
	}, {
		name: "chmod", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) { must(t, os.Chmod(tu.m("d/f"), 0o600)) },
		merged: copied, upper: copied,
	}, {
		name: "chown", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) { must(t, os.Lchown(tu.m("d/f"), 123, 456)) },
		merged: copied, upper: copied,
	}, {
		name: "utimens", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.Chtimes(tu.m("d/f"), time.Unix(1e9, 0), time.Unix(1e9, 0)))
		},
		merged: copied, upper: copied,
	}, {
		name: "setxattr", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) {
			must(t, unix.Setxattr(tu.m("d/f"), "user.k", []byte("v"), 0))
		},
		merged: copied, upper: copied,
	}, {
		name: "link", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) { must(t, os.Link(tu.m("d/f"), tu.m("d/g"))) },
		merged: []string{"d/", "d/f = data", "d/g = data"}, upper: []string{"d/", "d/f = data", "d/g = data"},
	}, {
		name: "rename a lower file", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) { must(t, os.Rename(tu.m("d/f"), tu.m("g"))) },
		merged: []string{"d/", "g = data"}, upper: []string{"d/", "d/.wh.f = ", "g = data"},
	}, {
		name: "reading copies nothing", setup: lowerFile,
		action: func(t *testing.T, tu *testUnion) {
			_, err := os.ReadFile(tu.m("d/f"))
			must(t, err)
			_, err = os.ReadDir(tu.m("d"))
			must(t, err)
		},
		merged: copied, upper: []string{},
	}})
}

// TestCopyUpMetadata checks that copy-up keeps the file's and its parent
// dirs' own mode, owner, times and xattrs, and the inode number.
func TestCopyUpMetadata(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/p/q/f", "data")
	must(t, os.Chmod(tu.lowers[0]+"/p/q", 0o710))
	must(t, os.Lchown(tu.lowers[0]+"/p/q", 11, 22))
	must(t, os.Lchown(tu.lowers[0]+"/p/q/f", 33, 44))
	must(t, syscall.Chmod(tu.lowers[0]+"/p/q/f", 0o4751))
	must(t, unix.Lsetxattr(tu.lowers[0]+"/p/q/f", "user.k", []byte("v"), 0))
	must(t, unix.Lsetxattr(tu.lowers[0]+"/p/q/f", "trusted.overlay.origin", []byte("x"), 0))
	mtime := time.Unix(1234567890, 0)
	must(t, os.Chtimes(tu.lowers[0]+"/p/q/f", mtime, mtime))
	must(t, os.Chtimes(tu.lowers[0]+"/p/q", mtime, mtime))
	tu.mount(t, nil)

	var before, after, upper, dir syscall.Stat_t
	must(t, syscall.Lstat(tu.m("p/q/f"), &before))
	must(t, unix.Setxattr(tu.m("p/q/f"), "user.new", []byte("1"), 0))
	must(t, syscall.Lstat(tu.m("p/q/f"), &after))
	must(t, syscall.Lstat(tu.upper+"/p/q/f", &upper))
	must(t, syscall.Lstat(tu.upper+"/p/q", &dir))
	if before.Ino != after.Ino {
		t.Errorf("st_ino changed across copy-up: %d -> %d", before.Ino, after.Ino)
	}
	if upper.Mode != syscall.S_IFREG|0o4751 || upper.Uid != 33 || upper.Gid != 44 || upper.Mtim.Sec != mtime.Unix() {
		t.Errorf("copied file metadata: mode %o uid %d gid %d mtime %d", upper.Mode, upper.Uid, upper.Gid, upper.Mtim.Sec)
	}
	if dir.Mode != syscall.S_IFDIR|0o710 || dir.Uid != 11 || dir.Gid != 22 || dir.Mtim.Sec != mtime.Unix() {
		t.Errorf("copied parent metadata: mode %o uid %d gid %d mtime %d", dir.Mode, dir.Uid, dir.Gid, dir.Mtim.Sec)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(tu.upper+"/p/q/f", "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr user.k not copied: %q %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(tu.upper+"/p/q/f", "trusted.overlay.origin", buf); err == nil {
		t.Errorf("internal overlay xattr was copied up")
	}
	if _, err := unix.Lgetxattr(tu.m("p/q/f"), "trusted.overlay.origin", buf); !errors.Is(err, unix.ENODATA) {
		t.Errorf("internal xattr visible through the mount: %v", err)
	}
	got, err := xattr.List(tu.m("p/q/f"))
	must(t, err)
	if len(got) != 2 {
		t.Errorf("listxattr = %q, want user.k and user.new", got)
	}
}

func TestRenameDirs(t *testing.T) {
	runRules(t, []ruleCase{{
		name: "rename a merged dir copies it whole",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/a", "a")
			writeFile(t, tu.lowers[0]+"/d/sub/b", "b")
			writeFile(t, tu.lowers[0]+"/d/.wh.a", "")
			writeFile(t, tu.lowers[1]+"/d/c", "c")
		},
		action: func(t *testing.T, tu *testUnion) { must(t, os.Rename(tu.m("d"), tu.m("e"))) },
		merged: []string{"e/", "e/c = c", "e/sub/", "e/sub/b = b"},
		// d's whiteout of a is dropped: at e it hides nothing. e is opaque:
		// a dir moved into a merged parent is, as on overlay.
		upper: []string{".wh.d = ", "e/", "e/.wh..wh..opq = ", "e/c = c", "e/sub/", "e/sub/b = b"},
	}, {
		name: "rename a dir over a deleted lower dir makes it opaque",
		setup: func(t *testing.T, tu *testUnion) {
			writeFile(t, tu.lowers[1]+"/d/a", "a")
			writeFile(t, tu.lowers[1]+"/e/old", "old")
		},
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.RemoveAll(tu.m("e")))
			must(t, os.Rename(tu.m("d"), tu.m("e")))
		},
		merged: []string{"e/", "e/a = a"},
		upper:  []string{".wh.d = ", "e/", "e/.wh..wh..opq = ", "e/a = a"},
	}, {
		// Moved into a merged parent, it turns opaque, as on overlay.
		name: "rename an upper-only dir",
		action: func(t *testing.T, tu *testUnion) {
			mkdirAll(t, tu.m("n/m"))
			must(t, os.Rename(tu.m("n"), tu.m("o")))
		},
		merged: []string{"o/", "o/m/"},
		upper:  []string{"o/", "o/.wh..wh..opq = ", "o/m/"},
	}})
}

func TestSpecialFiles(t *testing.T) {
	runRules(t, []ruleCase{{
		name: "symlink and fifo",
		action: func(t *testing.T, tu *testUnion) {
			must(t, os.Symlink("target", tu.m("l")))
			must(t, unix.Mkfifo(tu.m("p"), 0o644))
		},
		merged: []string{"l -> target", "p p"},
		upper:  []string{"l -> target", "p p"},
	}})
}

func TestExclusiveCreate(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "f")
	tu.mount(t, nil)
	_, err := os.OpenFile(tu.m("f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	wantErrno(t, err, syscall.EEXIST)
	f, err := os.OpenFile(tu.m("g"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	must(t, err)
	must(t, f.Close())
	st, err := os.Stat(tu.upper + "/g")
	must(t, err)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("created mode %o, want 640", st.Mode().Perm())
	}
}

func TestStatfsIsUpper(t *testing.T) {
	tu := newLayers(t, 1)
	tu.mount(t, nil)
	var m, u unix.Statfs_t
	must(t, unix.Statfs(tu.mnt, &m))
	must(t, unix.Statfs(tu.upper, &u))
	if m.Blocks != u.Blocks || m.Bsize != u.Bsize {
		t.Errorf("statfs: mount %d blocks of %d, upper %d of %d", m.Blocks, m.Bsize, u.Blocks, u.Bsize)
	}
}

func TestReadOnlyUnion(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "f")
	tu.mount(t, func(c *Config) { c.Upper, c.Work = "", "" })
	wantErrno(t, os.WriteFile(tu.m("f"), []byte("x"), 0o644), syscall.EROFS)
	wantErrno(t, os.Remove(tu.m("f")), syscall.EROFS)
	wantErrno(t, os.Mkdir(tu.m("d"), 0o755), syscall.EROFS)
	b, err := os.ReadFile(tu.m("f"))
	must(t, err)
	if string(b) != "f" {
		t.Errorf("read %q", b)
	}
	// A read-only union passes lower files through: reads by offset, by
	// mmap and from two opens at once must all see the lower file.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	must(t, os.WriteFile(tu.lowers[0]+"/big", big, 0o644))
	f1, err := os.Open(tu.m("big"))
	must(t, err)
	defer f1.Close()
	f2, err := os.Open(tu.m("big"))
	must(t, err)
	defer f2.Close()
	part := make([]byte, 100)
	_, err = f2.ReadAt(part, 4096+7)
	must(t, err)
	if !bytes.Equal(part, big[4096+7:4096+107]) {
		t.Errorf("pread at 4103: %q", part)
	}
	mapped, err := unix.Mmap(int(f1.Fd()), 0, len(big), unix.PROT_READ, unix.MAP_SHARED)
	must(t, err)
	defer unix.Munmap(mapped)
	if !bytes.Equal(mapped, big) {
		t.Errorf("mmap of the lower file differs from it")
	}
}

// TestLowerChangesShow checks that a change made directly in a lower dir
// after mounting shows through within the cache timeouts.
func TestLowerChangesShow(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "v1")
	writeFile(t, tu.upper+"/d/u", "u") // d is merged: upper and lower
	writeFile(t, tu.lowers[0]+"/d/l", "l")
	tu.mount(t, func(c *Config) {
		c.EntryTimeout, c.AttrTimeout, c.NegativeTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	})
	b, err := os.ReadFile(tu.m("f"))
	must(t, err)
	if string(b) != "v1" {
		t.Fatalf("read %q", b)
	}
	// List the dirs first, so the kernel caches their listings.
	_, err = os.ReadDir(tu.m("d"))
	must(t, err)
	_, err = os.ReadDir(tu.mnt)
	must(t, err)
	writeFile(t, tu.lowers[0]+"/f", "version2")
	writeFile(t, tu.lowers[0]+"/new", "n")
	writeFile(t, tu.lowers[0]+"/d/added", "a")
	ok := eventually(2*time.Second, func() bool {
		b, _ := os.ReadFile(tu.m("f"))
		_, err := os.Stat(tu.m("new"))
		return string(b) == "version2" && err == nil &&
			dirHas(tu.mnt, "new") && dirHas(tu.m("d"), "added")
	})
	if !ok {
		t.Errorf("lower change not visible through the mount (content, lookup or listing)")
	}
}

// dirHas reports whether a listing of dir holds name.
func dirHas(dir, name string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Name() == name {
			return true
		}
	}
	return false
}

// TestWhiteoutsShareOneFile checks that whiteouts are hard links of one
// empty file in the workdir (cheap to make), that each is still an empty
// regular file under its .wh. name, and that losing the shared file only
// means a new one is made.
func TestWhiteoutsShareOneFile(t *testing.T) {
	tu := newLayers(t, 1)
	for _, f := range []string{"a", "b", "c"} {
		writeFile(t, tu.lowers[0]+"/"+f, f)
	}
	tu.mount(t, nil)
	must(t, os.Remove(tu.m("a")))
	must(t, os.Remove(tu.m("b")))
	var sa, sb unix.Stat_t
	must(t, unix.Lstat(tu.upper+"/.wh.a", &sa))
	must(t, unix.Lstat(tu.upper+"/.wh.b", &sb))
	for _, st := range []unix.Stat_t{sa, sb} {
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
			t.Errorf("whiteout mode %o size %d, want an empty regular file", st.Mode, st.Size)
		}
	}
	if sa.Ino != sb.Ino {
		t.Errorf("whiteouts .wh.a and .wh.b are different inodes (%d, %d), want one shared file", sa.Ino, sb.Ino)
	}
	shared := filepath.Join(tu.work, "whiteout")
	must(t, os.Remove(shared))
	must(t, os.Remove(tu.m("c")))
	var sc unix.Stat_t
	must(t, unix.Lstat(tu.upper+"/.wh.c", &sc))
	if _, err := os.Stat(tu.m("c")); !os.IsNotExist(err) {
		t.Errorf("c after delete: %v", err)
	}
}

// TestWhiteoutLinkLimit fills the shared whiteout's link count up to what
// the filesystem allows (ext4: 65000) and checks that the next whiteout
// still gets made, on a new shared file. Needs no mount: it drives the
// union's whiteout code directly.
func TestWhiteoutLinkLimit(t *testing.T) {
	tu := newLayers(t, 1)
	cfg := DefaultConfig()
	cfg.Lowers, cfg.Upper, cfg.Work = tu.lowers, tu.upper, tu.work
	root, err := NewRoot(cfg)
	must(t, err)
	defer root.Close()
	u := root.u
	must(t, u.createWhiteout("", "first"))
	shared := filepath.Join(tu.work, sharedWhiteoutName)
	fill := t.TempDir()
	if !sameFS(t, fill, tu.work) {
		fill = filepath.Join(tu.work, "fill")
		must(t, os.Mkdir(fill, 0o755))
	}
	full := false
	for i := 0; i < 70000; i++ {
		err := os.Link(shared, filepath.Join(fill, strconv.Itoa(i)))
		if errors.Is(err, syscall.EMLINK) {
			full = true
			break
		}
		must(t, err)
	}
	if !full {
		t.Skip("this filesystem allows more than 70000 links: no link limit to test")
	}
	var old unix.Stat_t
	must(t, unix.Stat(shared, &old))
	must(t, u.createWhiteout("", "second"))
	var st unix.Stat_t
	must(t, unix.Lstat(tu.upper+"/.wh.second", &st))
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 || st.Ino == old.Ino {
		t.Errorf(".wh.second: mode %o size %d ino %d (full shared file %d): want an empty file on a new inode", st.Mode, st.Size, st.Ino, old.Ino)
	}
	// The new inode is the new shared file, not a one-off.
	must(t, u.createWhiteout("", "third"))
	var third unix.Stat_t
	must(t, unix.Lstat(tu.upper+"/.wh.third", &third))
	if third.Ino != st.Ino {
		t.Errorf(".wh.third is inode %d, .wh.second %d: want both linked to the new shared file", third.Ino, st.Ino)
	}
}

func sameFS(t *testing.T, a, b string) bool {
	var sa, sb unix.Stat_t
	must(t, unix.Stat(a, &sa))
	must(t, unix.Stat(b, &sb))
	return sa.Dev == sb.Dev
}

// TestReaddirResumesAfterCacheDrop reads a directory through a handle
// whose first entries the kernel served from its cached listing, drops the
// kernel's caches halfway, and reads on: the kernel then asks the daemon
// for the rest, from the offset reached, on a handle that never listed the
// directory itself. Every name must come exactly once.
func TestReaddirResumesAfterCacheDrop(t *testing.T) {
	tu := newLayers(t, 1)
	want := map[string]bool{}
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("entry-with-a-longish-name-%03d", i)
		writeFile(t, tu.lowers[0]+"/d/"+name, "x")
		want[name] = true
	}
	tu.mount(t, nil)
	_, err := os.ReadDir(tu.m("d")) // fills the kernel's listing cache
	must(t, err)
	fd, err := unix.Open(tu.m("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(fd)
	got := map[string]int{}
	buf := make([]byte, 1024) // a few entries per getdents
	read := func() int {
		n, err := unix.Getdents(fd, buf)
		must(t, err)
		for off := 0; off < n; {
			reclen := int(binary.LittleEndian.Uint16(buf[off+16:]))
			name := unix.ByteSliceToString(buf[off+19 : off+reclen])
			if name != "." && name != ".." {
				got[name]++
			}
			off += reclen
		}
		return n
	}
	read()
	read()
	must(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0))
	for read() > 0 {
	}
	for name, n := range got {
		if n != 1 || !want[name] {
			t.Errorf("%s listed %d times (in the dir: %v)", name, n, want[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("listed %d names, want %d", len(got), len(want))
	}
}
