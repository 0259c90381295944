package difftest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// tampered wraps kernel overlay so that its view differs from a clean one in
// a chosen way: the harness must notice each.
func tampered(name string, mount func(lowers []string, upper, work, mnt string) (func() error, error)) Mounter {
	m := Overlay
	m.Name = "overlay-" + name
	m.Mount = mount
	return m
}

// TestHarnessCatchesDivergences checks that every comparison can fail.
func TestHarnessCatchesDivergences(t *testing.T) {
	needMounts(t)
	cases := []struct {
		name  string
		cand  Mounter
		ops   []Op
		where string
		want  string // a substring of the report
	}{
		{"result", tampered("missing-lower", func(lowers []string, upper, work, mnt string) (func() error, error) {
			return mountOverlay(lowers[:1], upper, work, mnt)
		}), []Op{Read("d1/x")}, "result", `op #0 Read("d1/x"): result overlay=ok read 6`},
		{"merged", tampered("extra-file", func(lowers []string, upper, work, mnt string) (func() error, error) {
			if err := os.WriteFile(filepath.Join(upper, "zz"), []byte("x"), 0o644); err != nil {
				return nil, err
			}
			return mountOverlay(lowers, upper, work, mnt)
		}), []Op{Stat("a", true)}, "merged", "merged zz: overlay=<absent> overlay-extra-file=file"},
		{"lower", tampered("writes-lower", func(lowers []string, upper, work, mnt string) (func() error, error) {
			unmount, err := mountOverlay(lowers, upper, work, mnt)
			if err == nil {
				err = os.WriteFile(filepath.Join(lowers[2], "a"), []byte("changed"), 0o644)
			}
			return unmount, err
		}), []Op{Stat("missing", true)}, "lower", "overlay-writes-lower modified a lower layer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: c.cand}
			d, _, err := RunOnce(t.TempDir(), s, c.ops, Options{TreeEvery: 1}, t.Cleanup)
			if err != nil {
				t.Fatal(err)
			}
			if d == nil || d.Where != c.where || !strings.Contains(d.String(), c.want) {
				t.Fatalf("want a %s divergence containing %q, got %v", c.where, c.want, d)
			}
		})
	}
}

// hangingRoot is a FUSE file system whose lookups block until released.
type hangingRoot struct {
	fs.Inode
	release chan struct{}
}

func (r *hangingRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	<-r.release
	return nil, syscall.ENOENT
}

// TestHarnessSurvivesHang checks the watchdog: an op that never returns
// is reported as a hang, with stacks saved, and the mount goes away.
func TestHarnessSurvivesHang(t *testing.T) {
	needMounts(t)
	old := opTimeout
	opTimeout = time.Second
	defer func() { opTimeout = old }()
	var mnt string
	hanging := Mounter{Name: "hanging", Format: OverlayFormat,
		Mount: func(lowers []string, upper, work, m string) (func() error, error) {
			root := &hangingRoot{release: make(chan struct{})}
			server, err := fs.Mount(m, root, &fs.Options{})
			if err != nil {
				return nil, err
			}
			mnt = m
			register(m)
			return func() error {
				defer unregister(m)
				close(root.release)
				return server.Unmount()
			}, nil
		}}
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: hanging}
	d, _, err := RunOnce(t.TempDir(), s, []Op{Stat("x", true)}, Options{}, t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	if d == nil || d.Where != "hang" || !strings.Contains(d.String(), "goroutine stacks: /") {
		t.Fatalf("want a hang with saved stacks, got %v", d)
	}
	if i := strings.Index(d.String(), "goroutine stacks: "); i >= 0 {
		os.Remove(strings.TrimSuffix(strings.Fields(d.String()[i:])[2], ")"))
	}
	if conn := fuseConn(mnt); conn >= 0 {
		t.Errorf("%s is still mounted (FUSE connection %d)", mnt, conn)
	}
}

// TestUpperNormalization checks the upper snapshot on hand-made upper dirs:
// both whiteout formats read the same, a whiteout that hides a lower name
// is a divergence when missing, one that hides nothing is only a note.
func TestUpperNormalization(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mknod of char 0/0 whiteouts and trusted.* xattrs")
	}
	dir := t.TempDir()
	lowers, err := BuildStack(filepath.Join(dir, "lower"), DefaultLayers(), OverlayFormat)
	if err != nil {
		t.Fatal(err)
	}
	view, err := LowerView(lowers)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "d1/x", "d1/d3/w", "d2/z", "e/g", "h1", "d1/h2", "s"} {
		if !view[p] {
			t.Errorf("lower view misses %s", p)
		}
	}
	for _, p := range []string{"d1/y", "d2/x", "e/f"} {
		if view[p] {
			t.Errorf("lower view shows hidden %s", p)
		}
	}

	ovl := Layer{
		{Path: "a", Type: EWhiteout}, {Path: "nothing", Type: EWhiteout},
		{Path: "d1", Type: EDir, Mode: 0o755, Opaque: true}, {Path: "q", Type: EDir, Mode: 0o755, Opaque: true},
	}
	oci := ovl[:len(ovl):len(ovl)]
	upOvl, upOCI, upShort := filepath.Join(dir, "u1"), filepath.Join(dir, "u2"), filepath.Join(dir, "u3")
	must(t, Build(upOvl, ovl, OverlayFormat))
	must(t, Build(upOCI, oci, OCIFormat))
	must(t, os.MkdirAll(filepath.Join(upOCI, unionfsdWorkName, "tmp"), 0o755)) // skipped
	// u3 lacks the whiteout of a (a real difference) and the redundant ones.
	must(t, Build(upShort, Layer{{Path: "d1", Type: EDir, Mode: 0o755, Opaque: true}, {Path: "q", Type: EDir, Mode: 0o755}}, OCIFormat))
	t1, t2, t3 := scanUpper(t, upOvl), scanUpper(t, upOCI), scanUpper(t, upShort)
	if d := Diff(t1, t2, "ovl", "oci"); len(d) > 0 {
		t.Errorf("the two whiteout formats differ after normalization:\n%s", strings.Join(d, "\n"))
	}
	var real, redundant []string
	for _, line := range Diff(t1, t3, "ovl", "short") {
		p := line[:strings.IndexByte(line, ':')]
		if RedundantMarker(t1, p, view) {
			redundant = append(redundant, p)
		} else {
			real = append(real, p)
		}
	}
	if strings.Join(real, ",") != "a" || strings.Join(redundant, ",") != "nothing,q/.wh..wh..opq" {
		t.Errorf("got real differences %v and redundant ones %v, want [a] and [nothing q/.wh..wh..opq]", real, redundant)
	}
	if _, err := unix.Getxattr(upOvl+"/d1", "trusted.overlay.opaque", nil); err != nil {
		t.Errorf("overlay-format opaque dir lacks its xattr: %v", err)
	}
}

func scanUpper(t *testing.T, dir string) Tree {
	t.Helper()
	tr, err := ScanUpper(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
