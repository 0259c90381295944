package difftest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unionfsd/unionfsd/whiteout"
	"golang.org/x/sys/unix"
)

// ExplicitTimeLimit separates times set on purpose (layer fixtures and
// utimensat ops use times before it) from "now" stamps that writes leave,
// which differ between two mounts by microseconds. Snapshots record mtimes
// below the limit only.
const ExplicitTimeLimit = 1_500_000_000

// unionfsdWorkName is unionfsd's default workdir inside the upper
// (unionfs.DefaultWorkName; repeated here so that the snapshot code does not
// depend on the package under test).
const unionfsdWorkName = ".wh..wh.unionfsd.work"

// Node is what a snapshot records about one path. It is comparable: two
// snapshots agree on a path when their Nodes are ==.
type Node struct {
	Type      string // file dir symlink fifo chr blk sock whiteout opaque
	Mode      uint32 // permission bits incl. setuid/setgid/sticky
	Uid, Gid  uint32
	Size      int64  // regular files only
	Hash      string // regular files only: sha256 prefix of the contents
	Target    string // symlinks
	Rdev      uint64 // devices
	Mtime     string // only when below ExplicitTimeLimit (files, symlinks)
	Xattrs    string // "name=value" pairs, sorted, internal ones left out in uppers
	LinkGroup string // uppers only: smallest path sharing this inode
}

func (n Node) String() string {
	switch n.Type {
	case "", "whiteout", "opaque":
		if n.Type == "" {
			return "<absent>"
		}
		return n.Type
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %04o %d:%d", n.Type, n.Mode, n.Uid, n.Gid)
	if n.Type == "file" {
		fmt.Fprintf(&b, " size=%d sha=%s", n.Size, n.Hash)
	}
	if n.Target != "" || n.Type == "symlink" {
		fmt.Fprintf(&b, " ->%q", n.Target)
	}
	if n.Rdev != 0 {
		fmt.Fprintf(&b, " rdev=%d", n.Rdev)
	}
	if n.Mtime != "" {
		fmt.Fprintf(&b, " mtime=%s", n.Mtime)
	}
	if n.Xattrs != "" {
		fmt.Fprintf(&b, " xattrs{%s}", n.Xattrs)
	}
	if n.LinkGroup != "" {
		fmt.Fprintf(&b, " linked=%s", n.LinkGroup)
	}
	return b.String()
}

// Tree maps relative paths to nodes.
type Tree map[string]Node

// ScanMerged snapshots a merged view (a mount) from root, read-only.
func ScanMerged(root string) (Tree, error) {
	t := Tree{}
	err := walk(root, "", func(rel, p string, st *unix.Stat_t) (bool, error) {
		n, err := describe(p, st, false)
		if err != nil {
			return false, err
		}
		t[rel] = n
		return n.Type == "dir", nil
	})
	return t, err
}

// ScanUpper snapshots an upper dir in a format-neutral way: kernel-overlay
// whiteouts (char 0/0) and OCI ".wh.NAME" files both become a "whiteout"
// entry at NAME's path, the opaque xattr and the ".wh..wh..opq" file both
// become an "opaque" entry at DIR/.wh..wh..opq, union-internal xattrs are
// dropped and unionfsd's default workdir is skipped.
func ScanUpper(upper string) (Tree, error) {
	t := Tree{}
	inodes := map[uint64][]string{}
	err := walk(upper, "", func(rel, p string, st *unix.Stat_t) (bool, error) {
		name := filepath.Base(rel)
		if rel == unionfsdWorkName {
			return false, nil
		}
		if whiteout.IsOverlayWhiteout(st) {
			t[rel] = Node{Type: "whiteout"}
			return false, nil
		}
		if whiteout.IsOpaqueMarker(name) {
			t[rel] = Node{Type: "opaque"}
			return false, nil
		}
		if target, ok := whiteout.Target(name); ok {
			t[joinRel(parentOf(rel), target)] = Node{Type: "whiteout"}
			return false, nil
		}
		n, err := describe(p, st, true)
		if err != nil {
			return false, err
		}
		t[rel] = n
		if n.Type == "file" && st.Nlink > 1 {
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		}
		if n.Type != "dir" {
			return false, nil
		}
		opaque, err := whiteout.HasOpaqueXattr(p)
		if err != nil {
			return false, err
		}
		if opaque {
			t[joinRel(rel, whiteout.OpaqueName)] = Node{Type: "opaque"}
		}
		return true, nil
	})
	for _, paths := range inodes {
		if len(paths) < 2 {
			continue
		}
		sort.Strings(paths)
		for _, p := range paths {
			n := t[p]
			n.LinkGroup = paths[0]
			t[p] = n
		}
	}
	return t, err
}

// walk calls fn for every entry under root (not root itself), parents before
// children, in name order. fn returns whether to descend.
func walk(root, rel string, fn func(rel, p string, st *unix.Stat_t) (bool, error)) error {
	dir := filepath.Join(root, rel)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("scan %s: %w", dir, err)
	}
	for _, de := range ents {
		crel := joinRel(rel, de.Name())
		p := filepath.Join(root, crel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("scan %s: %w", p, err)
		}
		descend, err := fn(crel, p, &st)
		if err != nil {
			return err
		}
		if descend {
			if err := walk(root, crel, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "chr"
	case unix.S_IFBLK:
		return "blk"
	case unix.S_IFSOCK:
		return "sock"
	}
	return fmt.Sprintf("type%o", mode&unix.S_IFMT)
}

// describe builds the Node for p. hideInternal drops union-internal xattrs
// (for raw upper dirs; a merged view must hide them by itself).
func describe(p string, st *unix.Stat_t, hideInternal bool) (Node, error) {
	n := Node{
		Type: typeName(st.Mode),
		Mode: st.Mode & 0o7777,
		Uid:  st.Uid,
		Gid:  st.Gid,
	}
	switch n.Type {
	case "file":
		n.Size = st.Size
		h, err := hashFile(p)
		if err != nil {
			return n, err
		}
		n.Hash = h
	case "symlink":
		target, err := os.Readlink(p)
		if err != nil {
			return n, fmt.Errorf("scan %s: %w", p, err)
		}
		n.Target = target
		n.Mode = 0 // symlink modes are always 0777 and meaningless
	case "chr", "blk":
		n.Rdev = st.Rdev
	}
	if n.Type != "dir" && st.Mtim.Sec < ExplicitTimeLimit {
		n.Mtime = fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
	}
	x, err := xattrString(p, hideInternal)
	if err != nil {
		return n, err
	}
	n.Xattrs = x
	return n, nil
}

func hashFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("scan %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("scan %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// listXattrs returns the sorted xattr names of p (not following symlinks).
func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return sortedXattrNames(buf[:n]), nil
	}
}

// sortedXattrNames splits a listxattr result into its names, sorted.
func sortedXattrNames(buf []byte) []string {
	var names []string
	for _, s := range strings.Split(string(buf), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	sort.Strings(names)
	return names
}

func getXattr(p, name string, follow bool) ([]byte, error) {
	get := unix.Lgetxattr
	if follow {
		get = unix.Getxattr
	}
	buf := make([]byte, 256)
	for {
		n, err := get(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func xattrString(p string, hideInternal bool) (string, error) {
	names, err := listXattrs(p)
	if err != nil {
		return "", fmt.Errorf("scan xattrs %s: %w", p, err)
	}
	var parts []string
	for _, name := range names {
		if hideInternal && whiteout.IsInternalXattr(name) {
			continue
		}
		v, err := getXattr(p, name, false)
		if err != nil {
			return "", fmt.Errorf("scan xattr %s of %s: %w", name, p, err)
		}
		parts = append(parts, fmt.Sprintf("%s=%q", name, v))
	}
	return strings.Join(parts, " "), nil
}

// Diff lists the paths where a and b disagree, as
// "PATH: NAMEA=<node> NAMEB=<node>", sorted by path.
func Diff(a, b Tree, nameA, nameB string) []string {
	return diffFiltered(a, b, nameA, nameB, nil)
}

// diffFiltered is Diff that skips paths for which ignore returns true.
func diffFiltered(a, b Tree, nameA, nameB string, ignore func(p string, na, nb Node) bool) []string {
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	var sorted []string
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	var out []string
	for _, p := range sorted {
		na, nb := a[p], b[p]
		if na == nb || (ignore != nil && ignore(p, na, nb)) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s=%s %s=%s", p, nameA, na, nameB, nb))
	}
	return out
}

// RedundantMarker reports whether the whiteout or opaque entry at p in the
// upper snapshot t hides nothing, given what the lower layers show on their
// own (LowerView): kernel overlay and unionfsd may differ on such markers
// without any difference in what a user sees.
func RedundantMarker(t Tree, p string, lower map[string]bool) bool {
	switch t[p].Type {
	case "whiteout":
		// Under an opaque upper dir the lower layers are invisible anyway.
		return ancestorOpaque(t, parentOf(p)) || !lower[p]
	case "opaque":
		dir := parentOf(p)
		if ancestorOpaque(t, parentOf(dir)) {
			return true
		}
		prefix := dir + "/"
		for lp := range lower {
			if strings.HasPrefix(lp, prefix) {
				return false
			}
		}
		return true
	}
	return false
}

// ancestorOpaque reports whether dir or one of its ancestors is opaque in t.
func ancestorOpaque(t Tree, dir string) bool {
	for d := dir; d != ""; d = parentOf(d) {
		if t[d+"/"+whiteout.OpaqueName].Type == "opaque" {
			return true
		}
	}
	return false
}
