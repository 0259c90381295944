package inspect

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

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
func Changes(cfg unionfs.Config) ([]Change, error) {
	if cfg.Upper == "" {
		return nil, errors.New("read-only union: no upper dir, so no changes")
	}
	s, err := unionfs.NewStack(cfg)
	if err != nil {
		return nil, err
	}
	d := &differ{stack: s, upper: s.Dirs()[0], work: cfg.Work}
	if err := d.walk(""); err != nil {
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

// walk adds the changes in the upper dir rel ("" is the root).
func (d *differ) walk(rel string) error {
	names, have, err := listDir(filepath.Join(d.upper, rel))
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := d.entry(rel, name, have); err != nil {
			return err
		}
	}
	return nil
}

// entry adds the change of one upper entry, and recurses into dirs.
func (d *differ) entry(rel, name string, siblings map[string]bool) error {
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
	if err := unix.Lstat(full, &st); err != nil {
		return fmt.Errorf("diff %s: %w", full, err)
	}
	if whiteout.IsOverlayWhiteout(&st) {
		d.add(Deleted, p)
		return nil
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if opaque, _ := whiteout.IsOpaqueDir(full); isDir && opaque {
		d.add(Replaced, p)
		return d.walk(path.Join(rel, name))
	}
	below, err := d.stack.InLowers(p)
	if err != nil {
		return fmt.Errorf("diff %s: %w", p, err)
	}
	if below {
		d.add(Changed, p)
	} else {
		d.add(Added, p)
	}
	if isDir {
		return d.walk(path.Join(rel, name))
	}
	return nil
}

func (d *differ) add(k Kind, p string) { d.out = append(d.out, Change{Kind: k, Path: p}) }

// sortedNames lists a dir's entry names in byte order.
// listDir returns a directory's names, sorted, and the same as a set.
func listDir(dir string) ([]string, map[string]bool, error) {
	names, err := sortedNames(dir)
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	return names, have, err
}

func sortedNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, unwrap(err))
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, unwrap(err))
	}
	sort.Strings(names)
	return names, nil
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
