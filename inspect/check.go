package inspect

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/internal/beneath"
	"github.com/unionfsd/unionfsd/unionfs"
	"github.com/unionfsd/unionfsd/whiteout"
)

// Finding kinds.
const (
	KindTempFile      = "temp-file"  // copy-up staging entry left in the workdir
	KindWorkdirFS     = "workdir-fs" // workdir on another filesystem than the upper
	KindBesideEntry   = "whiteout-beside-entry"
	KindHidesNothing  = "whiteout-hides-nothing"
	KindMetacopyGone  = "metacopy-lower-gone"
	KindOverlayFormat = "overlay-format" // kernel-overlay markers in an upper that also has OCI ones
)

// Finding is one problem in an upper or work dir, with its fix.
type Finding struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
	repair  func() error
}

// Repairable reports whether Repair can apply the fix.
func (f *Finding) Repairable() bool { return f.repair != nil }

// Repair applies the fix; findings that need a person say so.
func (f *Finding) Repair() error {
	if f.repair == nil {
		return errors.New("no automatic repair: " + f.Fix)
	}
	if err := f.repair(); err != nil {
		return fmt.Errorf("repair %s: %w", f.Path, err)
	}
	return nil
}

// CheckResult is what Check found, and what it could not look at.
type CheckResult struct {
	Findings []*Finding
	Notes    []string // checks skipped for lack of input
}

// Check looks for what a crash or a foreign tool leaves in a union's upper
// and work dirs. It changes nothing; Repair on a finding does. Without
// lowers, whiteouts and metacopy entries are not checked against them.
func Check(cfg unionfs.Config) (*CheckResult, error) {
	if cfg.Upper == "" {
		return nil, errors.New("check needs an upper dir")
	}
	if cfg.Work == "" {
		cfg.Work = filepath.Join(cfg.Upper, unionfs.DefaultWorkName)
	}
	s, err := unionfs.NewStack(cfg)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	c := &checker{stack: s, upper: s.Dirs()[0], lowers: s.Dirs()[1:], res: &CheckResult{}}
	root, err := openUpper(c.upper)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if err := c.checkWork(cfg.Work, root); err != nil {
		return nil, err
	}
	if err := c.walk(root, ""); err != nil {
		return nil, err
	}
	c.mixedFormats()
	if len(c.lowers) == 0 {
		c.res.Notes = append(c.res.Notes, "no lower layers given: whiteouts and metacopy entries were not checked against them")
	}
	sort.SliceStable(c.res.Findings, func(i, j int) bool { return c.res.Findings[i].Path < c.res.Findings[j].Path })
	return c.res, nil
}

type checker struct {
	stack  *unionfs.Stack
	upper  string
	lowers []string
	res    *CheckResult
	// Marker counts per format, and the overlay-format ones to convert if
	// both formats turn up.
	ociMarkers     int
	overlayMarkers []*Finding
}

func (c *checker) add(f *Finding) { c.res.Findings = append(c.res.Findings, f) }

// checkWork reports copy-up leftovers in the workdir and a workdir that
// cannot serve the upper (open as upper).
func (c *checker) checkWork(work string, upper *os.File) error {
	dir, err := beneath.OpenRoot(work)
	if errors.Is(err, os.ErrNotExist) {
		return nil // made at the next mount
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", work, err)
	}
	defer dir.Close()
	names, _, err := listDir(dir, work, "")
	if err != nil {
		return err
	}
	var ws, us unix.Stat_t
	if unix.Fstat(int(dir.Fd()), &ws) == nil && unix.Fstat(int(upper.Fd()), &us) == nil && ws.Dev != us.Dev {
		c.add(&Finding{Kind: KindWorkdirFS, Path: work,
			Problem: "workdir is on another filesystem than the upper dir: copy-up cannot rename into the upper",
			Fix:     "use a workdir on the upper's filesystem (the default is UPPER/" + unionfs.DefaultWorkName + ")"})
	}
	for _, n := range names {
		if !strings.HasPrefix(n, cow.TempPrefix) {
			continue
		}
		at := entryAt{root: work, name: n}
		c.add(&Finding{Kind: KindTempFile, Path: filepath.Join(work, n),
			Problem: "copy-up temp entry left by an interrupted copy-up (the upper never saw it)",
			Fix:     "remove it", repair: at.removeAll})
	}
	return nil
}

// walk checks the open upper dir rel ("" is the root) and everything below.
func (c *checker) walk(dir *os.File, rel string) error {
	names, have, err := listDir(dir, c.upper, rel)
	if err != nil {
		return err
	}
	if rel != "" {
		c.checkOpaque(dir, rel, have[whiteout.OpaqueName])
	}
	for _, name := range names {
		if err := c.entry(dir, rel, name, have); err != nil {
			return err
		}
	}
	return nil
}

// checkOpaque counts the open dir rel's opaque marker and notes an
// overlay-format one.
func (c *checker) checkOpaque(dir *os.File, rel string, ociMarker bool) {
	if ociMarker {
		c.ociMarkers++
	}
	if ok, _ := whiteout.HasOpaqueXattr(beneath.ProcPath(dir, ".")); ok {
		at := entryAt{root: c.upper, dir: rel}
		c.overlayMarkers = append(c.overlayMarkers, &Finding{Kind: KindOverlayFormat, Path: filepath.Join(c.upper, rel),
			Problem: "opaque in kernel-overlay format (overlay.opaque xattr) in an upper that also has OCI markers",
			Fix:     "convert: add " + whiteout.OpaqueName + " and remove the xattr",
			repair:  at.convertOpaque})
	}
}

// entry checks the entry name of the open dir rel, and what is below it.
func (c *checker) entry(dir *os.File, rel, name string, siblings map[string]bool) error {
	full := filepath.Join(c.upper, rel, name)
	at := entryAt{root: c.upper, dir: rel, name: name}
	if target, ok := whiteout.Target(name); ok {
		c.ociMarkers++
		return c.checkWhiteout(at, target, full, siblings[target])
	}
	if whiteout.IsWhiteoutName(name) {
		return nil // opaque marker (counted with its dir), workdir, reserved names
	}
	var st unix.Stat_t
	if err := beneath.Lstat(dir, name, &st); err != nil {
		return fmt.Errorf("check %s: %w", full, err)
	}
	switch {
	case whiteout.IsOverlayWhiteout(&st):
		return c.checkCharWhiteout(at, full)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		sub, err := openSubdir(dir, name, &st, "check", full)
		if err != nil {
			return err
		}
		defer sub.Close()
		return c.walk(sub, path.Join(rel, name))
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		c.checkMetacopy(dir, name, full)
	}
	return nil
}

// checkWhiteout checks the OCI whiteout at (full) that hides target.
func (c *checker) checkWhiteout(at entryAt, target, full string, besideEntry bool) error {
	if besideEntry {
		c.add(&Finding{Kind: KindBesideEntry, Path: full,
			Problem: fmt.Sprintf("whiteout beside %s, the entry it names: the entry wins, so the whiteout does nothing "+
				"(a create over a deleted name was interrupted)", target),
			Fix: "remove the whiteout", repair: at.remove})
		return nil
	}
	_, err := c.hidesNothing(at, target, full)
	return err
}

// checkCharWhiteout checks a kernel-overlay whiteout.
func (c *checker) checkCharWhiteout(at entryAt, full string) error {
	useless, err := c.hidesNothing(at, at.name, full)
	if err != nil || useless || !whiteout.NameFits(at.name) {
		// A name too long for ".wh." has no OCI whiteout: the device is
		// how unionfsd writes its deletion in either format.
		return err
	}
	c.overlayMarkers = append(c.overlayMarkers, &Finding{Kind: KindOverlayFormat, Path: full,
		Problem: "whiteout in kernel-overlay format (char 0/0) in an upper that also has OCI whiteouts",
		Fix:     "convert: replace it with " + whiteout.Name(at.name),
		repair:  at.convertCharWhiteout})
	return nil
}

// hidesNothing reports (as a finding, and returns true) a whiteout at (full)
// of name in its dir that hides nothing in the lowers.
func (c *checker) hidesNothing(at entryAt, name, full string) (bool, error) {
	hides, err := c.hidesSomething(at.dir, name)
	if err != nil || hides {
		return false, err
	}
	c.add(&Finding{Kind: KindHidesNothing, Path: full,
		Problem: fmt.Sprintf("whiteout for /%s, which no lower layer shows: it hides nothing", path.Join(at.dir, name)),
		Fix:     "remove the whiteout", repair: at.remove})
	return true, nil
}

// hidesSomething reports whether rel/name is visible in the lower layers by
// the union's rules. With no lowers it cannot tell and says yes.
func (c *checker) hidesSomething(rel, name string) (bool, error) {
	if len(c.lowers) == 0 {
		return true, nil
	}
	return c.stack.InLowers("/" + path.Join(rel, name))
}

// checkMetacopy reports a metacopy entry (name in dir) whose data file is
// gone, or whose pointer the mount refuses to follow. The entry is read
// through its dir's descriptor, and the pointer resolved only beneath the
// lower layers.
func (c *checker) checkMetacopy(dir *os.File, name, full string) {
	m := c.stack.Metacopy(0, beneath.ProcPath(dir, name))
	switch {
	case !m.Present || m.Layer >= 0:
		return
	case m.Rel == "":
		c.add(&Finding{Kind: KindMetacopyGone, Path: full,
			Problem: "metacopy entry with a pointer the mount refuses (wrong xattr namespace for this user, " +
				"from an older version, or forged): reading it fails with EPERM",
			Fix: "restore the file from its image, or delete it through the mount"})
		return
	}
	c.add(&Finding{Kind: KindMetacopyGone, Path: full,
		Problem: fmt.Sprintf("metacopy entry: its data, /%s in the lower layers, is gone (the layer was changed or removed)", m.Rel),
		Fix:     "restore the lower layer that held it, or delete the file through the mount (its data is lost)"})
}

// mixedFormats turns overlay-format markers into findings when the upper
// also holds OCI ones: kernel overlay ignores the OCI markers, and image
// tools may ignore the overlay ones, so a mixed upper means different
// things to different readers. A purely overlay-format upper is fine.
func (c *checker) mixedFormats() {
	if c.ociMarkers == 0 {
		return
	}
	for _, f := range c.overlayMarkers {
		c.add(f)
	}
}

// entryAt locates an entry for a repair: name in the dir rel from root (the
// upper or work dir). A repair runs after the walk, so it resolves the
// entry's dir again beneath root, never through a symlink, and changes only
// that dir's entries: a dir swapped for a symlink to a host path since the
// walk makes the repair fail instead of changing the host.
type entryAt struct {
	root, dir, name string
}

// openDir opens the entry's dir.
func (e entryAt) openDir() (*os.File, error) {
	root, err := beneath.OpenRoot(e.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return beneath.Open(root, e.dir, unix.O_RDONLY|unix.O_DIRECTORY)
}

func (e entryAt) remove() error {
	dir, err := e.openDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	return beneath.Remove(dir, e.name)
}

func (e entryAt) removeAll() error {
	dir, err := e.openDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	return beneath.RemoveAll(dir, e.name)
}

// convertCharWhiteout replaces a char 0/0 whiteout with an OCI one. The OCI
// whiteout comes first, so the name is hidden at every moment.
func (e entryAt) convertCharWhiteout() error {
	dir, err := e.openDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := whiteout.CreateFileAt(int(dir.Fd()), whiteout.Name(e.name)); err != nil {
		return err
	}
	return beneath.Remove(dir, e.name)
}

// convertOpaque replaces the overlay opaque xattr of the dir e.dir (e.name
// is empty) with the OCI marker.
func (e entryAt) convertOpaque() error {
	dir, err := e.openDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := whiteout.CreateFileAt(int(dir.Fd()), whiteout.OpaqueName); err != nil {
		return err
	}
	for _, x := range whiteout.OpaqueXattrs {
		if err := unix.Fremovexattr(int(dir.Fd()), x); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("removexattr %s %s: %w", filepath.Join(e.root, e.dir), x, err)
		}
	}
	return nil
}
