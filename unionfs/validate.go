package unionfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// Validate checks that the layer dirs of c can form a union and makes every
// path absolute with symlinks resolved, so the later checks and the mount
// agree on what each path is. It checks UIDMap and GIDMap (checkIDMaps)
// first. With an Upper and no Work it sets Work to
// <Upper>/DefaultWorkName. A missing Work dir is created (mode 0700), but
// only after every other check passed, so bad input changes nothing.
//
// Errors read "<path>: <cause>" and wrap the system error when there is one.
// Validate may be called again on a validated config.
func (c *Config) Validate() error {
	if len(c.Lowers) == 0 && c.Upper == "" {
		return errors.New("no layers: give at least one lower dir or an upper dir")
	}
	if err := c.checkIDMaps(); err != nil {
		return err
	}
	switch c.Watch {
	case "", WatchAuto, WatchFanotify, WatchInotify, WatchOff:
	default:
		return fmt.Errorf("watch=%s: want auto, fanotify, inotify or off", c.Watch)
	}
	switch c.IoUring {
	case "", IoUringAuto, IoUringOn, IoUringOff:
	default:
		return fmt.Errorf("io_uring=%s: want %s, %s or %s", c.IoUring, IoUringAuto, IoUringOn, IoUringOff)
	}
	if c.Work != "" && c.Upper == "" {
		return fmt.Errorf("%s: workdir given without an upper dir", c.Work)
	}
	lowers := make([]string, len(c.Lowers))
	for i, l := range c.Lowers {
		p, err := checkLayerDir(l, "lower dir")
		if err != nil {
			return err
		}
		lowers[i] = p
	}
	if c.Upper == "" {
		c.Lowers = lowers
		return nil
	}
	upper, err := checkUpperDir(c.Upper, lowers)
	if err != nil {
		return err
	}
	work, err := prepareWorkDir(c.Work, upper, lowers)
	if err != nil {
		return err
	}
	c.Lowers, c.Upper, c.Work = lowers, upper, work
	return nil
}

// checkLayerDir checks that p is an existing, readable and searchable dir and
// returns its absolute, symlink-free path.
func checkLayerDir(p, role string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty %s path", role)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", p, role, err)
	}
	if err := checkDir(abs); err != nil {
		return "", fmt.Errorf("%s: %s: %w", abs, role, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", abs, role, unwrapPathError(err))
	}
	return real, nil
}

// checkDir reports why p cannot serve as a layer dir, or nil.
func checkDir(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return fmt.Errorf("not searchable: %w", err)
	}
	// Opening and reading an entry is the real test: access(2) does not know
	// about FUSE mounts without allow_other, LSMs or odd filesystems.
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("not readable: %w", unwrapPathError(err))
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("not readable: %w", unwrapPathError(err))
	}
	return nil
}

// checkUpperDir checks the upper dir: a writable layer dir that neither
// contains nor sits inside a lower dir (a write through the union would then
// change a lower layer, or a layer would show inside itself).
func checkUpperDir(p string, lowers []string) (string, error) {
	upper, err := checkLayerDir(p, "upper dir")
	if err != nil {
		return "", err
	}
	if err := unix.Access(upper, unix.W_OK); err != nil {
		return "", fmt.Errorf("%s: upper dir: not writable: %w", upper, err)
	}
	for _, l := range lowers {
		switch {
		case upper == l:
			return "", fmt.Errorf("%s: upper dir is also a lower dir", upper)
		case isWithin(upper, l):
			return "", fmt.Errorf("%s: upper dir is inside lower dir %s", upper, l)
		case isWithin(l, upper):
			return "", fmt.Errorf("%s: lower dir is inside upper dir %s", l, upper)
		}
	}
	return upper, nil
}

// prepareWorkDir checks the workdir (defaulting it inside upper), creates it
// when missing and returns its absolute, symlink-free path.
func prepareWorkDir(p, upper string, lowers []string) (string, error) {
	if p == "" {
		p = filepath.Join(upper, DefaultWorkName)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: workdir: %w", p, err)
	}
	// Check where it would go before creating it: a bad workdir must not
	// leave a new dir behind (least of all inside a lower layer).
	if err := checkWorkPlace(abs, upper, lowers); err != nil {
		return "", err
	}
	if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
		// A new dir lands on its parent's filesystem.
		if err := sameFilesystem(abs, filepath.Dir(abs), upper); err != nil {
			return "", err
		}
		if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%s: workdir: cannot create: %w", abs, unwrapPathError(err))
		}
	}
	work, err := checkLayerDir(abs, "workdir")
	if err != nil {
		return "", err
	}
	// The path may have been a symlink: check the real place again.
	if err := checkWorkPlace(work, upper, lowers); err != nil {
		return "", err
	}
	if err := unix.Access(work, unix.W_OK); err != nil {
		return "", fmt.Errorf("%s: workdir: not writable: %w", work, err)
	}
	return work, sameFilesystem(work, work, upper)
}

// checkWorkPlace rejects workdirs that overlap a layer. A workdir inside the
// upper is fine only under a reserved ".wh..wh." name, which the union hides;
// anywhere else copy-up temp files would show in the merged view.
func checkWorkPlace(work, upper string, lowers []string) error {
	if real, err := filepath.EvalSymlinks(filepath.Dir(work)); err == nil {
		work = filepath.Join(real, filepath.Base(work))
	}
	switch {
	case work == upper:
		return fmt.Errorf("%s: workdir is the upper dir; it must be a separate dir", work)
	case isWithin(upper, work):
		return fmt.Errorf("%s: workdir contains upper dir %s", work, upper)
	case isWithin(work, upper):
		first := strings.SplitN(strings.TrimPrefix(work, upper+"/"), "/", 2)[0]
		if !whiteout.IsReserved(first) {
			return fmt.Errorf("%s: workdir is inside upper dir %s and would show in the union "+
				"(put it beside the upper dir)", work, upper)
		}
	}
	for _, l := range lowers {
		if isWithin(work, l) || isWithin(l, work) {
			return fmt.Errorf("%s: workdir overlaps lower dir %s", work, l)
		}
	}
	return nil
}

// sameFilesystem checks that the workdir work (found on probe's filesystem)
// and upper share a filesystem: copy-up renames finished files from work into
// upper, and rename(2) cannot cross filesystems.
func sameFilesystem(work, probe, upper string) error {
	var ws, us unix.Stat_t
	if err := unix.Stat(probe, &ws); err != nil {
		return fmt.Errorf("%s: workdir: %w", work, err)
	}
	if err := unix.Stat(upper, &us); err != nil {
		return fmt.Errorf("%s: upper dir: %w", upper, err)
	}
	if ws.Dev != us.Dev {
		return fmt.Errorf("%s: workdir is on another filesystem than upper dir %s", work, upper)
	}
	return nil
}

// isWithin reports whether p is dir or lies below it; both are clean
// absolute paths.
func isWithin(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// unwrapPathError drops the op and path of an *os.PathError, because our
// messages already name the path.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// maxID is the highest uid or gid: (uid_t)-1 means "no id" to the kernel.
const maxID = 1<<32 - 2

// Where the kernel shows which ids our user namespace maps.
const (
	uidMapFile = "/proc/self/uid_map"
	gidMapFile = "/proc/self/gid_map"
)

// checkIDMaps checks UIDMap and GIDMap: every range non-empty and within
// the id space, no id in two ranges on either side, and every id on both
// sides mapped in our user namespace (a chown to an unmapped id fails, and
// the kernel shows an unmapped id as the overflow id 65534). Errors name the
// map as the uidmapping=/gidmapping= option spells it: ID:MAPPED:COUNT, ID
// stored in the layers (HostID), MAPPED shown by the mount (ContainerID).
func (c *Config) checkIDMaps() error {
	sets := []struct {
		option, nsFile string
		maps           []IDMap
	}{
		{"uidmapping", uidMapFile, c.UIDMap},
		{"gidmapping", gidMapFile, c.GIDMap},
	}
	for _, s := range sets {
		if len(s.maps) == 0 {
			continue
		}
		err := checkIDRanges(s.maps)
		if err == nil {
			err = checkIDsInNamespace(s.maps, s.nsFile)
		}
		if err != nil {
			return fmt.Errorf("%s=%s: %w", s.option, formatIDMaps(s.maps), err)
		}
	}
	return nil
}

// formatIDMaps spells maps the way the uidmapping= option takes them.
func formatIDMaps(maps []IDMap) string {
	parts := make([]string, len(maps))
	for i, m := range maps {
		parts[i] = formatIDMap(m)
	}
	return strings.Join(parts, ":")
}

func formatIDMap(m IDMap) string {
	return fmt.Sprintf("%d:%d:%d", m.HostID, m.ContainerID, m.Size)
}

// idSide picks one side of a map: the stored ids or the shown ids.
type idSide struct {
	name  string
	start func(IDMap) uint32
}

var idSides = []idSide{
	{"stored", func(m IDMap) uint32 { return m.HostID }},
	{"shown", func(m IDMap) uint32 { return m.ContainerID }},
}

// checkIDRanges checks sizes, the id space and overlaps.
func checkIDRanges(maps []IDMap) error {
	for _, m := range maps {
		if m.Size == 0 {
			return fmt.Errorf("range %s has size 0", formatIDMap(m))
		}
		for _, side := range idSides {
			if last := uint64(side.start(m)) + uint64(m.Size) - 1; last > maxID {
				return fmt.Errorf("range %s: %s ids would run to %d, past the highest id %d",
					formatIDMap(m), side.name, last, uint64(maxID))
			}
		}
	}
	for i, a := range maps {
		for _, b := range maps[i+1:] {
			for _, side := range idSides {
				if lo, hi, ok := overlap(side.start(a), a.Size, side.start(b), b.Size); ok {
					return fmt.Errorf("ranges %s and %s overlap: %s ids %d-%d are in both",
						formatIDMap(a), formatIDMap(b), side.name, lo, hi)
				}
			}
		}
	}
	return nil
}

// overlap returns the ids [lo, hi] two ranges share.
func overlap(a, an, b, bn uint32) (lo, hi uint64, ok bool) {
	lo = max(uint64(a), uint64(b))
	hi = min(uint64(a)+uint64(an), uint64(b)+uint64(bn)) - 1 // sizes are > 0
	return lo, hi, lo <= hi
}

// checkIDsInNamespace checks that nsFile (our uid_map or gid_map) maps
// every id of maps, stored and shown.
func checkIDsInNamespace(maps []IDMap, nsFile string) error {
	ns, err := readNamespaceIDs(nsFile)
	if err != nil {
		return err
	}
	for _, m := range maps {
		for _, side := range idSides {
			if id, ok := firstUnmapped(ns, uint64(side.start(m)), uint64(m.Size)); !ok {
				return fmt.Errorf("%s id %d (range %s) is not mapped in this user namespace (%s); "+
					"run where it is (podman unshare, or as root) or use ids it maps",
					side.name, id, formatIDMap(m), nsFile)
			}
		}
	}
	return nil
}

// nsRange is one line of a uid_map/gid_map: ids [start, start+count) inside.
type nsRange struct{ start, count uint64 }

// readNamespaceIDs reads the inside ranges of a uid_map or gid_map file.
func readNamespaceIDs(p string) ([]nsRange, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the user namespace's ids: %w", err)
	}
	var out []nsRange
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		r, ok := parseNamespaceLine(line)
		if !ok {
			return nil, fmt.Errorf("%s: unexpected line %q", p, line)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseNamespaceLine reads "INSIDE OUTSIDE COUNT".
func parseNamespaceLine(line string) (nsRange, bool) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return nsRange{}, false
	}
	var n [3]uint64
	for i := range n {
		v, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil {
			return nsRange{}, false
		}
		n[i] = v
	}
	return nsRange{start: n[0], count: n[2]}, true
}

// firstUnmapped walks [start, start+n) through the namespace ranges; it
// returns the first id no range covers, or ok.
func firstUnmapped(ns []nsRange, start, n uint64) (id uint64, ok bool) {
	end := start + n
	for id = start; id < end; {
		next := id
		for _, r := range ns {
			if id >= r.start && id < r.start+r.count {
				next = r.start + r.count
				break
			}
		}
		if next == id {
			return id, false
		}
		id = next
	}
	return 0, true
}
