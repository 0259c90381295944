// Package inspect holds the tools that look at a union from outside: where
// a mount's layers are (mount records), what its upper dir changed (diff)
// and what a crash or a foreign tool left broken in it (check, repair).
package inspect

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/mountinfo"
	"github.com/unionfsd/unionfsd/unionfs"
)

// Record is what a running unionfsd writes about its mount, so that tools
// given only the mountpoint can find the layers.
type Record struct {
	Mountpoint string    `json:"mountpoint"`
	Upper      string    `json:"upper,omitempty"`
	Work       string    `json:"work,omitempty"`
	Lowers     []string  `json:"lowers"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
}

// Config is the union described by the record.
func (r *Record) Config() unionfs.Config {
	return unionfs.Config{Lowers: r.Lowers, Upper: r.Upper, Work: r.Work}
}

// RecordDirEnv overrides where records live (tests, unusual setups).
const RecordDirEnv = "UNIONFSD_RECORD_DIR"

// RecordDir is where records live: /run/unionfsd for root,
// $XDG_RUNTIME_DIR/unionfsd for other users (a per-user temp dir when that
// is unset).
func RecordDir() string {
	dir, _ := recordDirFor(os.Geteuid())
	return dir
}

// recordDirFor returns the record dir for euid and whether it is the
// fallback in the shared temp dir, where any user can create names.
func recordDirFor(euid int) (dir string, shared bool) {
	if d := os.Getenv(RecordDirEnv); d != "" {
		return d, false
	}
	if euid == 0 {
		return "/run/unionfsd", false
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		return filepath.Join(x, "unionfsd"), false
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("unionfsd-%d", euid)), true
}

// errRecordDirMissing means the record dir does not exist (yet).
var errRecordDirMissing = errors.New("no record dir")

// openRecordDir opens the record dir, creating it (mode 0700) first when
// create is set, and checks it before anything is read from or written into
// it: it must be a real dir (not a symlink), owned by us and writable by no
// one else, and in the shared temp dir exactly mode 0700. Another user may
// have made /tmp/unionfsd-UID first, to plant records that send explain,
// diff and check to layers of their choosing, or to read ours.
func openRecordDir(create bool) (*os.File, error) {
	euid := os.Geteuid()
	dir, shared := recordDirFor(euid)
	if create {
		if err := unix.Mkdir(dir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("mount record dir %s: cannot create: %w", dir, err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT) && !create:
		return nil, errRecordDirMissing
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("mount record dir %s: not a directory (a symlink or file is in the way; remove it)", dir)
	case err != nil:
		return nil, fmt.Errorf("mount record dir %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	if err := checkRecordDir(f, euid, shared); err != nil {
		f.Close()
		return nil, fmt.Errorf("mount record dir %s: %w", dir, err)
	}
	return f, nil
}

// checkRecordDir checks the opened record dir's owner and mode.
func checkRecordDir(f *os.File, euid int, shared bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	perm := st.Mode & 0o7777
	switch {
	case int(st.Uid) != euid:
		return fmt.Errorf("owned by uid %d, not by us (uid %d); remove it or set XDG_RUNTIME_DIR", st.Uid, euid)
	case perm&0o022 != 0:
		return fmt.Errorf("mode %04o lets other users write into it; chmod 0700 it", perm)
	case shared && perm != 0o700:
		return fmt.Errorf("mode %04o, want 0700 in the shared temp dir; chmod 0700 it", perm)
	}
	return nil
}

// recordPath names the record of a mountpoint after the escaped path, the
// way systemd names mount units: /mnt/my-dir -> mnt-my\x2ddir.json.
func recordPath(mountpoint string) string {
	return filepath.Join(RecordDir(), escapePath(mountpoint)+".json")
}

func escapePath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == ':', c == '.' && i > 0 && p[i-1] != '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// SaveRecord writes r atomically (temp file and rename) and returns a
// function that removes it again.
func SaveRecord(r Record) (remove func(), err error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("mount record: %w", err)
	}
	dir, err := openRecordDir(true)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	dfd := int(dir.Fd())
	p := recordPath(r.Mountpoint)
	name := filepath.Base(p)
	tmp := fmt.Sprintf(".tmp-%d-%d", os.Getpid(), time.Now().UnixNano())
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mount record %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr, unix.Renameat(dfd, tmp, dfd, name)); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return nil, fmt.Errorf("mount record %s: %w", p, err)
	}
	return func() { removeIfOurs(p, r.PID) }, nil
}

// removeIfOurs removes the record at p unless a newer daemon has replaced it.
func removeIfOurs(p string, pid int) {
	if r, err := readRecord(p); err == nil && r.PID == pid {
		os.Remove(p)
	}
}

func readRecord(p string) (*Record, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: bad mount record: %w", p, err)
	}
	return &r, nil
}

// ErrNoRecord means no live unionfsd mount is recorded for a path.
var ErrNoRecord = errors.New("no unionfsd mount recorded")

// LoadRecord returns the record of the live unionfsd mount at mountpoint
// (absolute, symlink-free).
func LoadRecord(mountpoint string) (*Record, error) {
	dir, err := openRecordDir(false)
	if errors.Is(err, errRecordDirMissing) {
		return nil, fmt.Errorf("%s: %w", mountpoint, ErrNoRecord)
	}
	if err != nil {
		return nil, err
	}
	dir.Close()
	p := recordPath(mountpoint)
	r, err := readRecord(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", mountpoint, ErrNoRecord)
	}
	if err != nil {
		return nil, err
	}
	if !r.live() {
		return nil, fmt.Errorf("%s: %w (stale record %s: unionfsd pid %d is gone)", mountpoint, ErrNoRecord, p, r.PID)
	}
	return r, nil
}

// live reports whether the recording daemon still runs and its mount is there.
func (r *Record) live() bool {
	if err := syscall.Kill(r.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	m, ok := MountAt(r.Mountpoint)
	return ok && strings.HasPrefix(m.FSType, "fuse")
}

// Records lists the live recorded mounts.
func Records() []*Record {
	dir, err := openRecordDir(false)
	if err != nil {
		return nil
	}
	defer dir.Close()
	ents, _ := dir.ReadDir(-1)
	var out []*Record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		if r, err := readRecord(filepath.Join(RecordDir(), e.Name())); err == nil && r.live() {
			out = append(out, r)
		}
	}
	return out
}

// FindMount returns the layers of the union mounted at or above p, and p's
// path inside it: from a unionfsd record, or from the mount options of a
// kernel overlay mount. p need not exist (explain a deleted file).
func FindMount(p string) (cfg unionfs.Config, mnt, inner string, err error) {
	abs, err := realPrefix(p)
	if err != nil {
		return cfg, "", "", err
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		if cfg, err := LayersOf(dir); err == nil {
			return cfg, dir, "/" + strings.TrimPrefix(strings.TrimPrefix(abs, dir), "/"), nil
		} else if !errors.Is(err, ErrNoRecord) {
			return cfg, "", "", err
		}
		if dir == "/" {
			return cfg, "", "", fmt.Errorf("%s: %w at or above it", abs, ErrNoRecord)
		}
	}
}

// realPrefix makes p absolute and resolves symlinks in its parent dirs,
// as far as they exist. The last element stays as written: explaining a
// symlink means the link, not its target.
func realPrefix(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	if abs == "/" {
		return abs, nil
	}
	rest := filepath.Base(abs)
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest), nil
		}
		if dir == "/" {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// LayersOf returns the layers of the union mounted exactly at mnt: a
// unionfsd mount with a live record, or a kernel overlay mount. Errors that
// wrap ErrNoRecord mean "no union mounted there".
func LayersOf(mnt string) (unionfs.Config, error) {
	r, err := LoadRecord(mnt)
	if err == nil {
		return r.Config(), nil
	}
	m, ok := MountAt(mnt)
	switch {
	case !ok:
		return unionfs.Config{}, err
	case m.FSType == "overlay":
		return overlayLayers(mnt, m.SuperOpts)
	case strings.HasPrefix(m.FSType, "fuse.unionfsd"):
		return unionfs.Config{}, fmt.Errorf("%s: unionfsd mount without a record of its layers "+
			"(mounted by another program, or its daemon is gone): give the layers explicitly", mnt)
	}
	return unionfs.Config{}, err
}

// overlayLayers reads lowerdir, upperdir and workdir from an overlay
// mount's options.
func overlayLayers(mnt, opts string) (unionfs.Config, error) {
	var cfg unionfs.Config
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		v = mountinfo.Unescape(v)
		switch k {
		case "lowerdir":
			cfg.Lowers = append(cfg.Lowers, splitColons(v)...)
		case "lowerdir+":
			cfg.Lowers = append(cfg.Lowers, v)
		case "upperdir":
			cfg.Upper = v
		case "workdir":
			cfg.Work = v
		}
	}
	if len(cfg.Lowers) == 0 {
		return cfg, fmt.Errorf("%s: overlay mount shows no lowerdir", mnt)
	}
	return cfg, nil
}

// splitColons splits overlay's lowerdir list; "\:" is a colon in a path.
func splitColons(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ':':
			cur.WriteByte(':')
			i++
		case s[i] == ':':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// Mount is one line of /proc/self/mountinfo.
type Mount = mountinfo.Mount

// MountAt returns the topmost mount at dir (absolute, symlink-free): the
// one a path lookup at dir enters.
func MountAt(dir string) (Mount, bool) {
	var found Mount
	ok := false
	mounts, _ := Mounts()
	for _, m := range mounts {
		if m.Point == dir {
			found, ok = m, true
		}
	}
	return found, ok
}

// Mounts lists the mounts of our mount namespace, in mountinfo order.
func Mounts() ([]Mount, error) { return mountinfo.Read() }

// IsMountPoint reports whether dir (absolute, symlink-free) is the mount
// point of a mount in our mount namespace.
func IsMountPoint(dir string) (bool, error) {
	mounts, err := Mounts()
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m.Point == dir {
			return true, nil
		}
	}
	return false, nil
}

// UpperInUse names a live mount that writes to upper: a recorded unionfsd
// mount or a kernel overlay mount. Repairs must not race with it.
func UpperInUse(upper string) (string, bool) {
	for _, r := range Records() {
		if r.Upper == upper {
			return fmt.Sprintf("unionfsd mount %s (pid %d)", r.Mountpoint, r.PID), true
		}
	}
	mounts, _ := Mounts()
	for _, m := range mounts {
		if m.FSType != "overlay" {
			continue
		}
		if cfg, err := overlayLayers(m.Point, m.SuperOpts); err == nil && cfg.Upper == upper {
			return "kernel overlay mount " + m.Point, true
		}
	}
	return "", false
}

// RecordContaining returns the live record of the unionfsd mount at or
// above p.
func RecordContaining(p string) (*Record, bool) {
	abs, err := realPrefix(p)
	if err != nil {
		return nil, false
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := LoadRecord(dir); err == nil {
			return r, true
		}
		if dir == "/" {
			return nil, false
		}
	}
}

// RecordForUpper returns the live record of the unionfsd mount using upper.
func RecordForUpper(upper string) (*Record, bool) {
	for _, r := range Records() {
		if r.Upper == upper {
			return r, true
		}
	}
	return nil, false
}
