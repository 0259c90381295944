package difftest

import (
	"math/rand/v2"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultLayers is a small three-layer stack (top first) with every kind of
// lower-layer feature the random ops should run into: files shadowed across
// layers, a merged directory over three layers, a whiteout of a file, a
// whiteout of a directory re-created above it, an opaque directory, a
// symlink to a directory, a fifo, a hard-link pair, xattrs, non-root owners,
// a setuid file and a file larger than one FUSE write.
// longName is a lower file name of NAME_MAX bytes: no ".wh." name exists
// for it, so deleting it needs an overlay-format whiteout.
var longName = strings.Repeat("L", 255)

func DefaultLayers() []Layer {
	return []Layer{
		{ // top
			{Path: "a", Type: EFile, Mode: 0o755, Data: "top a\n", Xattrs: map[string]string{"user.t": "top"}, Mtime: 1_000_000_100},
			{Path: "d1", Type: EDir, Mode: 0o755},
			{Path: "d1/d3", Type: EDir, Mode: 0o755},
			{Path: "d1/d3/z", Type: EFile, Mode: 0o644, Data: "top z\n"},
			{Path: "n", Type: EDir, Mode: 0o700, Uid: 1000, Gid: 1000},
			{Path: "n/m", Type: EFile, Mode: 0o600, Uid: 1000, Gid: 1000, Data: "m\n"},
			{Path: "e", Type: EDir, Mode: 0o755},
			{Path: "e/g", Type: EFile, Mode: 0o644, Data: "g\n"},
			{Path: "s", Type: ESymlink, Target: "d1"},
		},
		{ // middle
			{Path: "d1", Type: EDir, Mode: 0o711},
			{Path: "d1/x", Type: EFile, Mode: 0o600, Data: "mid x\n", Mtime: 1_000_000_200},
			{Path: "d1/y", Type: EWhiteout},
			{Path: "d2", Type: EDir, Mode: 0o750, Gid: 1000, Opaque: true, Xattrs: map[string]string{"user.dir": "d2"}},
			{Path: "d2/z", Type: EFile, Mode: 0o644, Data: "mid z\n"},
			{Path: "b", Type: EFile, Mode: 0o644, Data: "mid b\n", Xattrs: map[string]string{"user.k": "v", "user.k2": ""}},
			{Path: "e", Type: EWhiteout},
			{Path: "f", Type: EFifo, Mode: 0o644},
		},
		{ // bottom
			{Path: "a", Type: EFile, Mode: 0o644, Data: "bottom a\n"},
			{Path: "d1", Type: EDir, Mode: 0o775},
			{Path: "d1/x", Type: EFile, Mode: 0o644, Data: "bottom x\n"},
			{Path: "d1/y", Type: EFile, Mode: 0o644, Data: "bottom y\n"},
			{Path: "d1/d3", Type: EDir, Mode: 0o755, Uid: 1001},
			{Path: "d1/d3/w", Type: ESymlink, Target: "z"},
			{Path: "d1/d3/v", Type: EFile, Mode: 0o640, Uid: 1001, Gid: 1001, Data: "v\n"},
			{Path: "d2", Type: EDir, Mode: 0o755},
			{Path: "d2/x", Type: EFile, Mode: 0o644, Data: "hidden by opaque d2\n"},
			{Path: "e", Type: EDir, Mode: 0o755},
			{Path: "e/f", Type: EFile, Mode: 0o644, Data: "hidden by whiteout e\n"},
			{Path: "h1", Type: EFile, Mode: 0o644, Data: "hard\n"},
			{Path: "d1/h2", Type: EHardlink, Target: "h1"},
			{Path: "c", Type: ESymlink, Target: "a"},
			{Path: "g", Type: EFile, Mode: 0o4755, Uid: 1000, Gid: 1000, Data: "setuid\n"},
			{Path: "big", Type: EFile, Mode: 0o644, Data: string(Data(7, 200<<10))},
			{Path: longName, Type: EFile, Mode: 0o644, Data: "long\n"},
		},
	}
}

// PoolFiles and PoolDirs are the paths the random ops use: most names of
// DefaultLayers plus a few new ones, so that ops collide a lot, with lower
// files, with each other and with the wrong file types. Ops on files pick
// from PoolFiles and ops on directories from PoolDirs, most of the time. No
// name starts with ".wh." (unionfsd refuses those on purpose; overlay allows
// them).
var (
	PoolFiles = []string{
		"a", "b", "c", "f", "g", "h1", "big", "x", "y",
		"d1/x", "d1/y", "d1/h2", "d1/a", "d1/d3/z", "d1/d3/w", "d1/d3/v", "d1/d3/a",
		"d2/x", "d2/z", "d2/a", "e/f", "e/g", "n/m", "n/a", "s/x", "x/a", "x/d3/z", "y/a",
	}
	PoolDirs = []string{"d1", "d2", "e", "n", "s", "x", "y", "d1/d3", "d1/a", "d2/a", "x/d3", "y/a"}
)

// symlinkTargets are relative and never climb with "..": whatever they
// resolve to stays inside the mount, even when an op follows them.
var symlinkTargets = []string{"a", "x", "d3", "d3/z", "z", "missing", ".", "d1"}

var (
	fileModes = []uint32{0o644, 0o600, 0o755, 0o444, 0o700, 0o640, 0o000, 0o4755, 0o2755, 0o6711}
	dirModes  = []uint32{0o755, 0o700, 0o750, 0o1777, 0o2775, 0o555, 0o711}
	ids       = []int{0, 1000, 1001, -1}
	xnames    = []string{"user.k", "user.t", "user.n1", "user.n2"}
	xvalues   = []string{"", "v", "value two", strings.Repeat("long", 100)}
	sizes     = []int64{0, 1, 10, 100, 4095, 4096, 5000, 20000}
	lengths   = []int64{0, 1, 10, 100, 4096, 5000}
)

// Gen makes random op sequences over a path pool.
type Gen struct {
	r                   *rand.Rand
	files, dirs         []string
	ids                 []int    // owners chown picks from
	fileModes, dirModes []uint32 // modes create, mkdir and chmod pick from
	users               []int    // nil: root, and uid 1000 now and then
}

// NewGen returns a generator; the same seed gives the same ops.
func NewGen(seed uint64, files, dirs []string) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), files: files, dirs: dirs,
		ids: ids, fileModes: fileModes, dirModes: dirModes}
}

// Random returns n ops from seed over PoolFiles and PoolDirs.
func Random(seed uint64, n int) []Op {
	g := NewGen(seed, PoolFiles, PoolDirs)
	ops := make([]Op, n)
	for i := range ops {
		ops[i] = g.Next()
	}
	return ops
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// weighted op makers: more weight, more often.
var makers = []struct {
	weight int
	make   func(g *Gen) Op
}{
	{8, func(g *Gen) Op { return Create(g.file(), pick(g.r, g.fileModes), g.r.IntN(2) == 0) }},
	{10, func(g *Gen) Op { return Write(g.file(), pick(g.r, sizes), g.length(), g.r.Uint32()) }},
	{5, func(g *Gen) Op { return Append(g.file(), g.length(), g.r.Uint32()) }},
	{5, func(g *Gen) Op { return Truncate(g.file(), pick(g.r, sizes)) }},
	{3, func(g *Gen) Op { return OpenTrunc(g.file()) }},
	{2, func(g *Gen) Op { return Fallocate(g.file(), pick(g.r, sizes), pick(g.r, lengths[1:])) }},
	{6, func(g *Gen) Op { return Read(g.file()) }},
	{7, func(g *Gen) Op { return Unlink(g.file()) }},
	{8, func(g *Gen) Op { return Mkdir(g.dir(), pick(g.r, g.dirModes)) }},
	{6, func(g *Gen) Op { return Rmdir(g.dir()) }},
	{12, func(g *Gen) Op { return Rename(g.any(), g.any(), g.renameFlags()) }},
	{4, func(g *Gen) Op { p := g.file(); return Symlink(pick(g.r, symlinkTargets), p) }},
	{2, func(g *Gen) Op { return Readlink(g.file()) }},
	{4, func(g *Gen) Op { return Link(g.file(), g.file()) }},
	{2, func(g *Gen) Op { return Mkfifo(g.file(), pick(g.r, g.fileModes[:6])) }},
	{5, func(g *Gen) Op { return Chmod(g.any(), g.mode()) }},
	{4, func(g *Gen) Op { return Chown(g.any(), pick(g.r, g.ids), pick(g.r, g.ids), g.r.IntN(2) == 0) }},
	{4, func(g *Gen) Op { return g.utimes(g.any()) }},
	{5, func(g *Gen) Op {
		p := g.any()
		return Setxattr(p, pick(g.r, xnames), pick(g.r, xvalues), g.xattrFlags(), g.r.IntN(3) == 0)
	}},
	{3, func(g *Gen) Op { return Getxattr(g.any(), pick(g.r, xnames), g.r.IntN(3) == 0) }},
	{2, func(g *Gen) Op { return Listxattr(g.any(), g.r.IntN(3) == 0) }},
	{3, func(g *Gen) Op { return Removexattr(g.any(), pick(g.r, xnames), g.r.IntN(3) == 0) }},
	{3, func(g *Gen) Op { return Stat(g.any(), g.r.IntN(2) == 0) }},
	{4, func(g *Gen) Op { return Readdir(g.dir()) }},
	{5, func(g *Gen) Op { return Open(g.slot(), g.file(), pick(g.r, openModes)) }},
	{4, func(g *Gen) Op { return FdWrite(g.slot(), pick(g.r, sizes), g.length(), g.r.Uint32()) }},
	{3, func(g *Gen) Op { return FdRead(g.slot()) }},
	{2, func(g *Gen) Op { return FdStat(g.slot()) }},
	{2, func(g *Gen) Op { return FdTruncate(g.slot(), pick(g.r, sizes)) }},
	{1, func(g *Gen) Op { return FdChmod(g.slot(), pick(g.r, g.fileModes)) }},
	{1, func(g *Gen) Op { return FdChown(g.slot(), pick(g.r, g.ids), pick(g.r, g.ids)) }},
	{1, func(g *Gen) Op {
		u := g.utimes("")
		return FdUtimes(g.slot(), u.Atime.Sec, u.Atime.Nsec, u.Mtime.Sec, u.Mtime.Nsec)
	}},
	{3, func(g *Gen) Op { return Close(g.slot()) }},
}

// openModes are the flags Open ops use.
var openModes = []int{
	unix.O_RDONLY, unix.O_WRONLY, unix.O_RDWR, unix.O_RDWR | unix.O_APPEND,
	unix.O_WRONLY | unix.O_TRUNC, unix.O_RDWR | unix.O_CREAT,
}

// userOdds is the chance (1 in userOdds) that an op runs as uid 1000
// rather than as root, so that permission checks get exercised.
const userOdds = 8

var totalWeight = func() int {
	t := 0
	for _, m := range makers {
		t += m.weight
	}
	return t
}()

// Next returns the next random op.
func (g *Gen) Next() Op {
	w := g.r.IntN(totalWeight)
	for _, m := range makers {
		if w < m.weight {
			op := m.make(g)
			if g.users != nil {
				if i := g.r.IntN(len(g.users) + 1); i > 0 {
					op = AsUser(g.users[i-1], op)
				}
			} else if g.r.IntN(userOdds) == 0 {
				op = AsUser(1000, op)
			}
			return op
		}
		w -= m.weight
	}
	panic("unreachable")
}

func (g *Gen) slot() int { return g.r.IntN(NumSlots) }

// file mostly picks a file path, dir mostly a directory path, any either.
func (g *Gen) file() string { return g.biased(g.files) }
func (g *Gen) dir() string  { return g.biased(g.dirs) }
func (g *Gen) any() string  { return g.biased(nil) }

func (g *Gen) biased(prefer []string) string {
	if prefer != nil && g.r.IntN(4) != 0 {
		return pick(g.r, prefer)
	}
	if g.r.IntN(len(g.files)+len(g.dirs)) < len(g.files) {
		return pick(g.r, g.files)
	}
	return pick(g.r, g.dirs)
}

func (g *Gen) length() int64 {
	if g.r.IntN(50) == 0 {
		return 70_000 // more than one page, less than one FUSE write
	}
	return pick(g.r, lengths)
}

func (g *Gen) mode() uint32 {
	if g.r.IntN(2) == 0 {
		return pick(g.r, g.dirModes)
	}
	return pick(g.r, g.fileModes)
}

func (g *Gen) renameFlags() int {
	switch g.r.IntN(8) {
	case 0:
		return unix.RENAME_NOREPLACE
	case 1:
		return unix.RENAME_EXCHANGE
	}
	return 0
}

func (g *Gen) xattrFlags() int {
	switch g.r.IntN(6) {
	case 0:
		return unix.XATTR_CREATE
	case 1:
		return unix.XATTR_REPLACE
	}
	return 0
}

// utimes sets explicit times (below ExplicitTimeLimit, so that snapshots
// compare them), sometimes leaving atime alone or stamping mtime with "now".
func (g *Gen) utimes(p string) Op {
	nsec := func() int64 {
		switch g.r.IntN(4) {
		case 0:
			return 0
		case 1:
			return unix.UTIME_OMIT
		}
		return g.r.Int64N(1_000_000_000)
	}
	asec := 1_100_000_000 + g.r.Int64N(1_000_000)
	msec := 1_200_000_000 + g.r.Int64N(1_000_000)
	mnsec := nsec()
	if g.r.IntN(10) == 0 {
		mnsec = unix.UTIME_NOW
	}
	return Utimes(p, asec, nsec(), msec, mnsec, g.r.IntN(3) == 0)
}

// SharedLayers is a stack for ops by two users who share a group (User1,
// User2, SharedGID; see userGroups) and root: a /tmp-like sticky dir with
// everyone's files, setgid dirs of the shared group, group-only modes
// (where the owner may have less than the group or the others) and a
// private dir. Parts are in the lower layer, so changes copy up.
func SharedLayers() []Layer {
	const u1, u2, sg = User1, User2, SharedGID
	return []Layer{
		{ // top
			{Path: "grp", Type: EDir, Mode: 0o070, Gid: sg},
			{Path: "grp/f", Type: EFile, Mode: 0o060, Uid: u1, Gid: sg, Data: "group rw\n"},
			{Path: "grp/o", Type: EFile, Mode: 0o007, Uid: u1, Gid: sg, Data: "others only\n"},
			{Path: "grp/x", Type: EFile, Mode: 0o070, Uid: u2, Gid: sg, Data: "group rwx\n"},
			{Path: "priv", Type: EDir, Mode: 0o700, Uid: u1, Gid: u1},
			{Path: "priv/f", Type: EFile, Mode: 0o644, Uid: u1, Gid: u1, Data: "private\n"},
			{Path: "tmp", Type: EDir, Mode: 0o1777},
			{Path: "tmp/new", Type: EFile, Mode: 0o666, Uid: u2, Gid: u2, Data: "top\n"},
		},
		{ // bottom
			{Path: "tmp", Type: EDir, Mode: 0o1777},
			{Path: "tmp/r", Type: EFile, Mode: 0o644, Data: "root's\n"},
			{Path: "tmp/a", Type: EFile, Mode: 0o666, Uid: u1, Gid: u1, Data: "a\n"},
			{Path: "tmp/b", Type: EFile, Mode: 0o600, Uid: u2, Gid: u2, Data: "b\n"},
			{Path: "tmp/ad", Type: EDir, Mode: 0o777, Uid: u1, Gid: u1},
			{Path: "tmp/bd", Type: EDir, Mode: 0o755, Uid: u2, Gid: u2},
			{Path: "sg", Type: EDir, Mode: 0o2775, Gid: sg},
			{Path: "sg/f", Type: EFile, Mode: 0o664, Uid: u1, Gid: sg, Data: "shared\n"},
			{Path: "sg/sub", Type: EDir, Mode: 0o2770, Uid: u2, Gid: sg},
			{Path: "sg/sub/g", Type: EFile, Mode: 0o2750, Uid: u2, Gid: sg, Data: "setgid\n"},
			{Path: "g6", Type: EFile, Mode: 0o060, Gid: sg, Data: "root's, group rw\n"},
			{Path: "grp", Type: EDir, Mode: 0o755},
		},
	}
}

// Shared pools: SharedLayers' names and a few new ones in each dir.
var (
	SharedFiles = []string{"tmp/r", "tmp/a", "tmp/b", "tmp/new", "tmp/c", "tmp/ad/f", "tmp/bd/f",
		"sg/f", "sg/n", "sg/sub/g", "sg/sub/n", "grp/f", "grp/o", "grp/x", "grp/n", "priv/f", "priv/n", "g6", "z"}
	SharedDirs = []string{"tmp", "tmp/ad", "tmp/bd", "tmp/cd", "sg", "sg/sub", "sg/d", "grp", "grp/d", "priv", "priv/d"}
)

// sharedIDs, sharedFileModes and sharedDirModes add the users' ids and
// group-only modes to what ops pick.
var (
	sharedIDs       = []int{0, User1, User2, SharedGID, -1}
	sharedFileModes = []uint32{0o644, 0o660, 0o070, 0o060, 0o007, 0o600, 0o2770, 0o4755, 0o2755, 0o640}
	sharedDirModes  = []uint32{0o1777, 0o2775, 0o2770, 0o070, 0o770, 0o755, 0o700, 0o1770}
)

// RandomShared returns n ops from seed over the shared pools, run by root,
// User1 and User2 in about equal parts.
func RandomShared(seed uint64, n int) []Op {
	g := NewGen(seed, SharedFiles, SharedDirs)
	g.ids, g.fileModes, g.dirModes = sharedIDs, sharedFileModes, sharedDirModes
	g.users = []int{User1, User2}
	ops := make([]Op, n)
	for i := range ops {
		ops[i] = g.Next()
	}
	return ops
}
