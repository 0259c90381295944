package layers_test

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/whiteout"
	"golang.org/x/sys/unix"
)

// openStore makes a fresh store in a temp dir.
func openStore(t *testing.T) *layers.Store {
	t.Helper()
	s, err := layers.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustImport(t *testing.T, s *layers.Store, path string) []*layers.Image {
	t.Helper()
	imgs, err := s.Import(path, layers.ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	return imgs
}

// node describes one file for tree comparisons.
type node struct {
	kind    string // "dir", "file", "symlink", "fifo", "char", "block"
	mode    uint32 // permission bits incl. setuid/setgid/sticky
	uid     uint32
	gid     uint32
	content string // sha256 of a file, target of a symlink, "maj:min" of a device
	mtime   int64
	xattrs  string
}

func (n node) String() string {
	return fmt.Sprintf("%s %o %d:%d %s mtime=%d xattrs=[%s]", n.kind, n.mode, n.uid, n.gid, n.content, n.mtime, n.xattrs)
}

// describe stats one path.
func describe(t *testing.T, p string, withMtime bool) node {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	n := node{mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
	if withMtime {
		n.mtime = st.Mtim.Sec
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.kind = "dir"
	case unix.S_IFREG:
		n.kind = "file"
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		n.content = hex.EncodeToString(sum[:8])
	case unix.S_IFLNK:
		n.kind = "symlink"
		n.content, _ = os.Readlink(p)
		n.mode = 0
	case unix.S_IFIFO:
		n.kind = "fifo"
	case unix.S_IFCHR, unix.S_IFBLK:
		n.kind = "char"
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			n.kind = "block"
		}
		n.content = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	n.xattrs = xattrString(p)
	return n
}

func xattrString(p string) string {
	buf := make([]byte, 4096)
	sz, err := unix.Llistxattr(p, buf)
	if err != nil || sz == 0 {
		return ""
	}
	var parts []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || whiteout.IsInternalXattr(name) || strings.HasPrefix(name, "security.selinux") {
			continue
		}
		val := make([]byte, 4096)
		vn, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			continue
		}
		parts = append(parts, name+"="+string(val[:vn]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// snapshot describes every entry under root (root itself excluded).
func snapshot(t *testing.T, root string, withMtime bool) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = describe(t, p, withMtime)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mergeLayers computes the merged view of layer dirs (topmost first) by the
// OCI rules, as a reference independent of any union filesystem.
func mergeLayers(t *testing.T, dirs []string) map[string]node {
	t.Helper()
	merged := map[string]node{}
	for i := len(dirs) - 1; i >= 0; i-- {
		applyLayer(t, merged, dirs[i])
	}
	return merged
}

func applyLayer(t *testing.T, merged map[string]node, dir string) {
	layer := snapshot(t, dir, false)
	names := make([]string, 0, len(layer))
	for n := range layer {
		names = append(names, n)
	}
	sort.Strings(names)
	// Deletions first: whiteouts and opaque markers act on the lower state.
	for _, rel := range names {
		base := filepath.Base(rel)
		parent := filepath.Dir(rel)
		switch {
		case base == whiteout.OpaqueName:
			removeBelow(merged, parent, true)
		case strings.HasPrefix(base, whiteout.Prefix):
			target, ok := whiteout.Target(base)
			if ok {
				removeBelow(merged, filepath.Join(parent, target), false)
			}
		}
	}
	for _, rel := range names {
		if whiteout.IsWhiteoutName(filepath.Base(rel)) || underReserved(rel) {
			continue
		}
		n := layer[rel]
		if old, ok := merged[rel]; ok && old.kind == "dir" && n.kind != "dir" {
			removeBelow(merged, rel, false)
		}
		merged[rel] = n
	}
}

// underReserved reports a path inside a reserved ".wh..wh.*" dir (a workdir).
func underReserved(rel string) bool {
	comps := strings.Split(rel, "/")
	for _, c := range comps[:len(comps)-1] {
		if whiteout.IsReserved(c) {
			return true
		}
	}
	return false
}

// removeBelow deletes p (unless onlyChildren) and everything under it.
func removeBelow(m map[string]node, p string, onlyChildren bool) {
	prefix := p + "/"
	if p == "." {
		prefix = ""
	}
	for k := range m {
		if strings.HasPrefix(k, prefix) || (!onlyChildren && k == p) {
			delete(m, k)
		}
	}
}

// diffTrees reports differences between two snapshots.
func diffTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	var problems []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			problems = append(problems, "missing "+k+": "+w.String())
		} else if g != w {
			problems = append(problems, fmt.Sprintf("%s: want %s, got %s", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, "extra "+k+": "+g.String())
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("trees differ:\n  %s", strings.Join(problems, "\n  "))
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

// listDir returns the names in dir (nil if it does not exist).
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func newGzip(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }
