package inspect

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/beneath"
	"github.com/unionfsd/unionfsd/unionfs"
	"github.com/unionfsd/unionfsd/whiteout"
)

// Kind is the kind of one change, with docker diff's letters.
type Kind byte

const (
	Added    Kind = 'A' // new: no lower layer has the name
	Changed  Kind = 'C' // the upper's copy replaces the one below (data, metadata or a dir's contents)
	Deleted  Kind = 'D' // a whiteout hides the name
	Replaced Kind = 'O' // an opaque dir: nothing below it shows any more
)

// Change is one line of a changeset.
type Change struct {
	Kind Kind   `json:"kind"`
	Path string `json:"path"`
}

func (c Change) String() string { return fmt.Sprintf("%c %s", c.Kind, c.Path) }

// Changes lists what the upper dir of cfg changes in its lowers, sorted by
// path. Whether an entry is added or changed follows the union's rules (an
// entry under an opaque dir is added). Without lowers every entry is
// added. The workdir and reserved ".wh..wh." names are not changes.
//
// The upper may belong to a running container, which can swap any dir in
// it for a symlink to a host path while we read: below the upper's root
// nothing is looked up by path (see listDir).
func Changes(cfg unionfs.Config) ([]Change, error) {
	if cfg.Upper == "" {
		return nil, errors.New("read-only union: no upper dir, so no changes")
	}
	s, err := unionfs.NewStack(cfg)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	d := &differ{stack: s, upper: s.Dirs()[0], work: cfg.Work}
	root, err := openUpper(d.upper)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if err := d.walk(root, ""); err != nil {
		return nil, err
	}
	sort.SliceStable(d.out, func(i, j int) bool { return d.out[i].Path < d.out[j].Path })
	return d.out, nil
}

type differ struct {
	stack *unionfs.Stack
	upper string
	work  string
	out   []Change
}

// walk adds the changes in the open upper dir rel ("" is the root).
func (d *differ) walk(dir *os.File, rel string) error {
	names, have, err := listDir(dir, d.upper, rel)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := d.entry(dir, rel, name, have); err != nil {
			return err
		}
	}
	return nil
}

// entry adds the change of the entry name of dir (rel from the upper's
// root), and recurses into dirs.
func (d *differ) entry(dir *os.File, rel, name string, siblings map[string]bool) error {
	full := filepath.Join(d.upper, rel, name)
	p := "/" + path.Join(rel, name)
	if target, ok := whiteout.Target(name); ok {
		if !siblings[target] { // beside its entry a whiteout is void (check reports it)
			d.add(Deleted, "/"+path.Join(rel, target))
		}
		return nil
	}
	if whiteout.IsWhiteoutName(name) || full == d.work {
		return nil // opaque marker (seen with its dir), workdir, reserved names
	}
	var st unix.Stat_t
	if err := beneath.Lstat(dir, name, &st); err != nil {
		return fmt.Errorf("diff %s: %w", full, err)
	}
	if whiteout.IsOverlayWhiteout(&st) {
		d.add(Deleted, p)
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return d.addLower(p)
	}
	sub, err := openSubdir(dir, name, &st, "diff", full)
	if err != nil {
		return err
	}
	defer sub.Close()
	if opaque, _ := isOpaqueDir(sub); opaque {
		d.add(Replaced, p)
	} else if err := d.addLower(p); err != nil {
		return err
	}
	return d.walk(sub, path.Join(rel, name))
}

// addLower adds p as changed if the lowers show it, else as added.
func (d *differ) addLower(p string) error {
	below, err := d.stack.InLowers(p)
	if err != nil {
		return fmt.Errorf("diff %s: %w", p, err)
	}
	if below {
		d.add(Changed, p)
	} else {
		d.add(Added, p)
	}
	return nil
}

func (d *differ) add(k Kind, p string) { d.out = append(d.out, Change{Kind: k, Path: p}) }

// openUpper opens an upper (or work) dir as the root of a walk.
func openUpper(dir string) (*os.File, error) {
	f, err := beneath.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return f, nil
}

// listDir returns the open dir's names, sorted, and the same as a set.
// root and rel name the dir in messages only: below the root nothing is
// looked up by path, so a dir swapped for a symlink while we walk is never
// followed out of the upper.
func listDir(dir *os.File, root, rel string) ([]string, map[string]bool, error) {
	names, err := beneath.Names(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(root, rel), unwrap(err))
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	return names, have, nil
}

// openSubdir opens the dir name of dir (rel from the upper's root) that st
// describes, to walk it.
func openSubdir(dir *os.File, name string, st *unix.Stat_t, op, full string) (*os.File, error) {
	sub, err := beneath.OpenDir(dir, name, st)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, full, err)
	}
	return sub, nil
}

// isOpaqueDir reports whether the open dir is opaque: it holds the OCI
// marker or carries an overlay opaque xattr.
func isOpaqueDir(dir *os.File) (bool, error) {
	var st unix.Stat_t
	err := beneath.Lstat(dir, whiteout.OpaqueName, &st)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return false, err
	}
	return whiteout.HasOpaqueXattr(beneath.ProcPath(dir, "."))
}

// unwrap drops an *os.PathError's op and path when the message names the
// path already.
func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
