package difftest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/unionfsd/unionfsd/whiteout"
	"golang.org/x/sys/unix"
)

// EntryType is the kind of a layer entry.
type EntryType int

// The entry types a layer spec can hold.
const (
	EFile EntryType = iota
	EDir
	ESymlink
	EFifo
	EWhiteout // hides the same name in the layers below
	EHardlink // a second name for the file at Entry.Target (same layer)
)

// Entry is one file system object in a layer spec. Parents must come before
// their children; missing parents are created with mode 0755.
type Entry struct {
	Path   string
	Type   EntryType
	Mode   uint32 // permission bits, including setuid/setgid/sticky
	Uid    int
	Gid    int
	Data   string            // File contents
	Target string            // Symlink target, or Hardlink source path
	Opaque bool              // Dir hides everything below it
	Xattrs map[string]string // user.* (or trusted.*) xattrs
	// Mtime is seconds since the epoch; 0 means a fixed default. Layer times
	// stay below ExplicitTimeLimit so that snapshots compare them.
	Mtime int64
}

// Layer is an ordered list of entries.
type Layer []Entry

// Format says how a layer encodes whiteouts and opaque directories.
type Format int

const (
	// OverlayFormat uses char device 0/0 whiteouts and the
	// trusted.overlay.opaque=y xattr: what kernel overlay reads.
	OverlayFormat Format = iota
	// OCIFormat uses ".wh.NAME" files and ".wh..wh..opq" markers: what OCI
	// image layers (and unionfsd's upper) hold.
	OCIFormat
)

func (f Format) String() string {
	if f == OCIFormat {
		return "oci"
	}
	return "overlay"
}

// defaultMtime is the time given to entries without an explicit one.
const defaultMtime = 1_000_000_000

// Build creates dir and writes the layer into it in the given format.
func Build(dir string, layer Layer, format Format) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build layer %s: %w", dir, err)
	}
	for _, e := range layer {
		if err := buildEntry(dir, e, format); err != nil {
			return fmt.Errorf("build layer entry %s/%s: %w", dir, e.Path, err)
		}
	}
	// Times last, children before parents: creating a child bumps the
	// parent's mtime.
	for i := len(layer) - 1; i >= 0; i-- {
		if err := setEntryTime(dir, layer[i], format); err != nil {
			return fmt.Errorf("build layer entry %s/%s: %w", dir, layer[i].Path, err)
		}
	}
	return nil
}

func buildEntry(dir string, e Entry, format Format) error {
	p := filepath.Join(dir, e.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if e.Type == EWhiteout {
		return makeWhiteout(p, format)
	}
	if err := createObject(dir, p, e); err != nil {
		return err
	}
	if e.Type == EHardlink {
		return nil // metadata belongs to the source entry
	}
	if err := unix.Lchown(p, e.Uid, e.Gid); err != nil {
		return err
	}
	if e.Type != ESymlink {
		// chmod after chown: chown clears setuid/setgid bits.
		if err := unix.Chmod(p, e.Mode); err != nil {
			return err
		}
	}
	for k, v := range e.Xattrs {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", k, err)
		}
	}
	if e.Type == EDir && e.Opaque {
		return makeOpaque(p, format)
	}
	return nil
}

func createObject(dir, p string, e Entry) error {
	switch e.Type {
	case EFile:
		return os.WriteFile(p, []byte(e.Data), 0o600)
	case EDir:
		return os.Mkdir(p, 0o700)
	case ESymlink:
		return os.Symlink(e.Target, p)
	case EFifo:
		return unix.Mkfifo(p, 0o600)
	case EHardlink:
		return os.Link(filepath.Join(dir, e.Target), p)
	}
	return fmt.Errorf("unknown entry type %d", e.Type)
}

func makeWhiteout(p string, format Format) error {
	if format == OCIFormat {
		wh := filepath.Join(filepath.Dir(p), whiteout.Name(filepath.Base(p)))
		return os.WriteFile(wh, nil, 0o644)
	}
	return unix.Mknod(p, unix.S_IFCHR|0o000, 0)
}

func makeOpaque(p string, format Format) error {
	if format == OCIFormat {
		return os.WriteFile(filepath.Join(p, whiteout.OpaqueName), nil, 0o644)
	}
	return unix.Lsetxattr(p, whiteout.TrustedOpaqueXattr, []byte("y"), 0)
}

func setEntryTime(dir string, e Entry, format Format) error {
	p := filepath.Join(dir, e.Path)
	if e.Type == EWhiteout || e.Type == EHardlink {
		return nil
	}
	sec := e.Mtime
	if sec == 0 {
		sec = defaultMtime
	}
	// A nanosecond part checks that copy-up keeps full precision.
	ts := []unix.Timespec{{Sec: sec, Nsec: 123456789}, {Sec: sec, Nsec: 987654321}}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// BuildStack builds layers (top first) as dir/l0, dir/l1, ... and returns the
// layer dirs, top first.
func BuildStack(dir string, layers []Layer, format Format) ([]string, error) {
	var dirs []string
	for i, l := range layers {
		d := filepath.Join(dir, fmt.Sprintf("l%d", i))
		if err := Build(d, l, format); err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// LowerView computes which paths the lower layers (top first) make visible
// on their own, reading both whiteout formats. Snapshot comparison uses it to
// tell a whiteout or opaque marker that hides something from one that hides
// nothing.
func LowerView(lowers []string) (map[string]bool, error) {
	visible := map[string]bool{}
	err := mergeLowerDir("", lowers, visible)
	return visible, err
}

// mergeLowerDir records the visible children of rel, given the real dirs
// that hold rel in each contributing layer, top first.
func mergeLowerDir(rel string, dirs []string, visible map[string]bool) error {
	decided := map[string]bool{}
	subdirs := map[string][]string{}
	open := map[string]bool{} // name is a dir still merging with lower layers
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("lower view %s: %w", d, err)
		}
		var hidden []string
		for _, de := range ents {
			name := de.Name()
			if target, ok := whiteout.Target(name); ok {
				hidden = append(hidden, target)
				continue
			}
			if whiteout.IsWhiteoutName(name) {
				continue
			}
			if decided[name] && !open[name] {
				continue
			}
			p := filepath.Join(d, name)
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return fmt.Errorf("lower view %s: %w", p, err)
			}
			if whiteout.IsOverlayWhiteout(&st) {
				hidden = append(hidden, name)
				continue
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			if !decided[name] {
				decided[name] = true
				visible[joinRel(rel, name)] = true
			} else if !isDir {
				open[name] = false
				continue
			}
			if !isDir {
				continue
			}
			subdirs[name] = append(subdirs[name], p)
			opaque, err := whiteout.IsOpaqueDir(p)
			if err != nil {
				return err
			}
			open[name] = !opaque
		}
		// A whiteout hides the name in the layers below, not in its own.
		for _, h := range hidden {
			if !decided[h] {
				decided[h] = true
			}
			open[h] = false
		}
	}
	for name, ds := range subdirs {
		if err := mergeLowerDir(joinRel(rel, name), ds, visible); err != nil {
			return err
		}
	}
	return nil
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// parentOf returns the parent of a relative path ("" for top-level names).
func parentOf(rel string) string {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ""
	}
	return rel[:i]
}
