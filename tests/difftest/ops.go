package difftest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// OpKind names an operation; the names match the constructors below.
type OpKind string

// The operations a sequence can hold.
const (
	KCreate      OpKind = "Create"
	KWrite       OpKind = "Write"
	KAppend      OpKind = "Append"
	KTruncate    OpKind = "Truncate"
	KOpenTrunc   OpKind = "OpenTrunc"
	KFallocate   OpKind = "Fallocate"
	KRead        OpKind = "Read"
	KUnlink      OpKind = "Unlink"
	KMkdir       OpKind = "Mkdir"
	KRmdir       OpKind = "Rmdir"
	KRename      OpKind = "Rename"
	KSymlink     OpKind = "Symlink"
	KReadlink    OpKind = "Readlink"
	KLink        OpKind = "Link"
	KMkfifo      OpKind = "Mkfifo"
	KChmod       OpKind = "Chmod"
	KChown       OpKind = "Chown"
	KUtimes      OpKind = "Utimes"
	KSetxattr    OpKind = "Setxattr"
	KGetxattr    OpKind = "Getxattr"
	KListxattr   OpKind = "Listxattr"
	KRemovexattr OpKind = "Removexattr"
	KStat        OpKind = "Stat"
	KReaddir     OpKind = "Readdir"
	KOpen        OpKind = "Open"
	KFdWrite     OpKind = "FdWrite"
	KFdRead      OpKind = "FdRead"
	KFdStat      OpKind = "FdStat"
	KFdTruncate  OpKind = "FdTruncate"
	KFdChmod     OpKind = "FdChmod"
	KFdChown     OpKind = "FdChown"
	KFdUtimes    OpKind = "FdUtimes"
	KClose       OpKind = "Close"
)

// Op is one scripted operation on paths relative to the mount root. Build
// them with the constructors (Create, Write, ...); String prints the
// constructor call, so a reported sequence can be pasted back into a test.
type Op struct {
	Kind     OpKind
	Path     string
	Path2    string // Rename/Link destination, Symlink target
	Mode     uint32
	Flags    int   // Create: O_EXCL; Rename: RENAME_*; Setxattr: XATTR_*
	Off      int64 // Write, Fallocate offset
	Len      int64 // Write/Append/Fallocate length, Truncate size
	Seed     uint32
	Uid, Gid int
	Atime    unix.Timespec
	Mtime    unix.Timespec
	NoFollow bool
	Name     string // xattr name
	Value    string // xattr value
	Slot     int    // fd ops: which descriptor slot
	User     int    // run as this uid (and gid) without capabilities; 0: root
}

// Constructors, one per kind.

func Create(path string, mode uint32, excl bool) Op {
	op := Op{Kind: KCreate, Path: path, Mode: mode}
	if excl {
		op.Flags = unix.O_EXCL
	}
	return op
}
func Write(path string, off, n int64, seed uint32) Op {
	return Op{Kind: KWrite, Path: path, Off: off, Len: n, Seed: seed}
}
func Append(path string, n int64, seed uint32) Op {
	return Op{Kind: KAppend, Path: path, Len: n, Seed: seed}
}
func Truncate(path string, size int64) Op { return Op{Kind: KTruncate, Path: path, Len: size} }
func OpenTrunc(path string) Op            { return Op{Kind: KOpenTrunc, Path: path} }
func Fallocate(path string, off, n int64) Op {
	return Op{Kind: KFallocate, Path: path, Off: off, Len: n}
}
func Read(path string) Op                { return Op{Kind: KRead, Path: path} }
func Unlink(path string) Op              { return Op{Kind: KUnlink, Path: path} }
func Mkdir(path string, mode uint32) Op  { return Op{Kind: KMkdir, Path: path, Mode: mode} }
func Rmdir(path string) Op               { return Op{Kind: KRmdir, Path: path} }
func Symlink(target, path string) Op     { return Op{Kind: KSymlink, Path: path, Path2: target} }
func Readlink(path string) Op            { return Op{Kind: KReadlink, Path: path} }
func Link(old, new string) Op            { return Op{Kind: KLink, Path: old, Path2: new} }
func Mkfifo(path string, mode uint32) Op { return Op{Kind: KMkfifo, Path: path, Mode: mode} }
func Chmod(path string, mode uint32) Op  { return Op{Kind: KChmod, Path: path, Mode: mode} }
func Readdir(path string) Op             { return Op{Kind: KReaddir, Path: path} }
func Rename(old, new string, flags int) Op {
	return Op{Kind: KRename, Path: old, Path2: new, Flags: flags}
}
func Chown(path string, uid, gid int, nofollow bool) Op {
	return Op{Kind: KChown, Path: path, Uid: uid, Gid: gid, NoFollow: nofollow}
}

// Utimes sets atime and mtime; a nanosecond field may be unix.UTIME_OMIT or
// unix.UTIME_NOW.
func Utimes(path string, asec, ansec, msec, mnsec int64, nofollow bool) Op {
	return Op{Kind: KUtimes, Path: path, NoFollow: nofollow,
		Atime: unix.Timespec{Sec: asec, Nsec: ansec}, Mtime: unix.Timespec{Sec: msec, Nsec: mnsec}}
}
func Setxattr(path, name, value string, flags int, nofollow bool) Op {
	return Op{Kind: KSetxattr, Path: path, Name: name, Value: value, Flags: flags, NoFollow: nofollow}
}
func Getxattr(path, name string, nofollow bool) Op {
	return Op{Kind: KGetxattr, Path: path, Name: name, NoFollow: nofollow}
}
func Listxattr(path string, nofollow bool) Op {
	return Op{Kind: KListxattr, Path: path, NoFollow: nofollow}
}
func Removexattr(path, name string, nofollow bool) Op {
	return Op{Kind: KRemovexattr, Path: path, Name: name, NoFollow: nofollow}
}
func Stat(path string, nofollow bool) Op { return Op{Kind: KStat, Path: path, NoFollow: nofollow} }

// String prints the op as the Go constructor call that makes it.
func (op Op) String() string {
	if op.User != 0 {
		inner := op
		inner.User = 0
		return fmt.Sprintf("AsUser(%d, %s)", op.User, inner)
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	switch op.Kind {
	case KCreate:
		return fmt.Sprintf("Create(%s, %#o, %v)", q(op.Path), op.Mode, op.Flags&unix.O_EXCL != 0)
	case KWrite:
		return fmt.Sprintf("Write(%s, %d, %d, %d)", q(op.Path), op.Off, op.Len, op.Seed)
	case KAppend:
		return fmt.Sprintf("Append(%s, %d, %d)", q(op.Path), op.Len, op.Seed)
	case KTruncate:
		return fmt.Sprintf("Truncate(%s, %d)", q(op.Path), op.Len)
	case KFallocate:
		return fmt.Sprintf("Fallocate(%s, %d, %d)", q(op.Path), op.Off, op.Len)
	case KMkdir, KMkfifo, KChmod:
		return fmt.Sprintf("%s(%s, %#o)", op.Kind, q(op.Path), op.Mode)
	case KRename:
		return fmt.Sprintf("Rename(%s, %s, %s)", q(op.Path), q(op.Path2), renameFlagName(op.Flags))
	case KSymlink:
		return fmt.Sprintf("Symlink(%s, %s)", q(op.Path2), q(op.Path))
	case KLink:
		return fmt.Sprintf("Link(%s, %s)", q(op.Path), q(op.Path2))
	case KChown:
		return fmt.Sprintf("Chown(%s, %d, %d, %v)", q(op.Path), op.Uid, op.Gid, op.NoFollow)
	case KUtimes:
		return fmt.Sprintf("Utimes(%s, %d, %s, %d, %s, %v)", q(op.Path),
			op.Atime.Sec, nsecName(op.Atime.Nsec), op.Mtime.Sec, nsecName(op.Mtime.Nsec), op.NoFollow)
	case KSetxattr:
		return fmt.Sprintf("Setxattr(%s, %s, %s, %s, %v)", q(op.Path), q(op.Name), q(op.Value),
			xattrFlagName(op.Flags), op.NoFollow)
	case KGetxattr, KRemovexattr:
		return fmt.Sprintf("%s(%s, %s, %v)", op.Kind, q(op.Path), q(op.Name), op.NoFollow)
	case KListxattr, KStat:
		return fmt.Sprintf("%s(%s, %v)", op.Kind, q(op.Path), op.NoFollow)
	case KOpen:
		return fmt.Sprintf("Open(%d, %s, %s)", op.Slot, q(op.Path), openFlagNames(op.Flags))
	case KFdWrite:
		return fmt.Sprintf("FdWrite(%d, %d, %d, %d)", op.Slot, op.Off, op.Len, op.Seed)
	case KFdTruncate:
		return fmt.Sprintf("FdTruncate(%d, %d)", op.Slot, op.Len)
	case KFdChmod:
		return fmt.Sprintf("FdChmod(%d, %#o)", op.Slot, op.Mode)
	case KFdChown:
		return fmt.Sprintf("FdChown(%d, %d, %d)", op.Slot, op.Uid, op.Gid)
	case KFdUtimes:
		return fmt.Sprintf("FdUtimes(%d, %d, %s, %d, %s)", op.Slot,
			op.Atime.Sec, nsecName(op.Atime.Nsec), op.Mtime.Sec, nsecName(op.Mtime.Nsec))
	case KFdRead, KFdStat, KClose:
		return fmt.Sprintf("%s(%d)", op.Kind, op.Slot)
	}
	return fmt.Sprintf("%s(%s)", op.Kind, q(op.Path))
}

func openFlagNames(f int) string {
	names := []string{"unix.O_RDONLY", "unix.O_WRONLY", "unix.O_RDWR"}[f&unix.O_ACCMODE : f&unix.O_ACCMODE+1]
	for _, x := range []struct {
		bit  int
		name string
	}{{unix.O_APPEND, "unix.O_APPEND"}, {unix.O_TRUNC, "unix.O_TRUNC"}, {unix.O_CREAT, "unix.O_CREAT"},
		{unix.O_EXCL, "unix.O_EXCL"}, {unix.O_TMPFILE, "unix.O_TMPFILE"}} {
		if f&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, "|")
}

func renameFlagName(f int) string {
	switch f {
	case 0:
		return "0"
	case unix.RENAME_NOREPLACE:
		return "unix.RENAME_NOREPLACE"
	case unix.RENAME_EXCHANGE:
		return "unix.RENAME_EXCHANGE"
	}
	return fmt.Sprint(f)
}

func xattrFlagName(f int) string {
	switch f {
	case 0:
		return "0"
	case unix.XATTR_CREATE:
		return "unix.XATTR_CREATE"
	case unix.XATTR_REPLACE:
		return "unix.XATTR_REPLACE"
	}
	return fmt.Sprint(f)
}

func nsecName(n int64) string {
	switch n {
	case unix.UTIME_NOW:
		return "unix.UTIME_NOW"
	case unix.UTIME_OMIT:
		return "unix.UTIME_OMIT"
	}
	return fmt.Sprint(n)
}

// Result is what an op returned: the errno of the first failing call (0 for
// success) and, for ops that read something, a description of what they read.
type Result struct {
	Errno unix.Errno
	Out   string
}

func (r Result) String() string {
	if r.Errno != 0 {
		return unix.ErrnoName(r.Errno)
	}
	if r.Out == "" {
		return "ok"
	}
	return "ok " + r.Out
}

func resultOf(out string, err error) Result {
	if err == nil {
		return Result{Out: out}
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return Result{Errno: errno}
	}
	// Not a syscall error: a harness problem, shown as such.
	return Result{Errno: unix.EBADE, Out: err.Error()}
}

// retry repeats f while it fails with EINTR (the Go runtime's preemption
// signals can interrupt a FUSE request before it was served).
func retry(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// openFlags are added to every open: O_NONBLOCK keeps fifos from blocking.
const openFlags = unix.O_NONBLOCK | unix.O_CLOEXEC

func open(p string, flags int, mode uint32) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(p, flags|openFlags, mode)
		return err
	})
	return fd, err
}

// withFile opens p, runs f on it and closes it; the first error wins.
func withFile(p string, flags int, f func(fd int) (string, error)) (string, error) {
	fd, err := open(p, flags, 0)
	if err != nil {
		return "", err
	}
	out, err := f(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return out, err
}

// Data returns the deterministic bytes a Write/Append op writes.
func Data(seed uint32, n int64) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x = x*1103515245 + 12345
		b[i] = byte(x >> 16)
	}
	return b
}

func writeAll(fd int, b []byte, off int64, pos bool) (string, error) {
	total := 0
	for total < len(b) || len(b) == 0 {
		var n int
		err := retry(func() (err error) {
			if pos {
				n, err = unix.Pwrite(fd, b[total:], off+int64(total))
			} else {
				n, err = unix.Write(fd, b[total:])
			}
			return err
		})
		if err != nil {
			return "", err
		}
		total += n
		if len(b) == 0 || n == 0 {
			break
		}
	}
	return fmt.Sprintf("wrote %d", total), nil
}

func readAll(fd int) (string, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	total := 0
	for {
		var n int
		err := retry(func() (err error) {
			n, err = unix.Read(fd, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		total += n
	}
	return fmt.Sprintf("read %d sha=%s", total, hex.EncodeToString(h.Sum(nil))[:12]), nil
}

func shortHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])[:12]
}

// Apply runs op in env. With env.EmulateEXDEV, a rename that fails with
// EXDEV (kernel overlay without redirect_dir refuses to move directories that
// exist in a lower layer) is redone piece by piece, the way mv(1) falls back,
// so that the result can be compared with a union that renames directly.
func (op Op) Apply(env *Env) Result {
	if op.User == 0 {
		return resultOf(op.applyIn(env))
	}
	// A goroutine of its own: its thread takes the user's credentials and
	// is discarded afterwards.
	done := make(chan Result, 1)
	go func() {
		if err := becomeUser(op.User); err != nil {
			done <- resultOf("", err)
			return
		}
		done <- resultOf(op.applyIn(env))
	}()
	return <-done
}

func (e *Env) path(rel string) string { return filepath.Join(e.Root, rel) }

func (op Op) applyIn(env *Env) (string, error) {
	switch op.Kind {
	case KOpen, KFdWrite, KFdRead, KFdStat, KFdTruncate, KFdChmod, KFdChown, KFdUtimes, KClose:
		return env.applyFd(op)
	}
	return op.apply(env.path(op.Path), env.path(op.Path2), env.EmulateEXDEV)
}

func (op Op) apply(p, p2 string, emulateEXDEV bool) (string, error) {
	switch op.Kind {
	case KCreate:
		return withFile2(p, unix.O_CREAT|unix.O_WRONLY|op.Flags, op.Mode)
	case KWrite:
		return withFile(p, unix.O_WRONLY, func(fd int) (string, error) {
			return writeAll(fd, Data(op.Seed, op.Len), op.Off, true)
		})
	case KAppend:
		return withFile(p, unix.O_WRONLY|unix.O_APPEND, func(fd int) (string, error) {
			return writeAll(fd, Data(op.Seed, op.Len), 0, false)
		})
	case KTruncate:
		return "", retry(func() error { return unix.Truncate(p, op.Len) })
	case KOpenTrunc:
		return withFile(p, unix.O_WRONLY|unix.O_TRUNC, func(int) (string, error) { return "", nil })
	case KFallocate:
		return withFile(p, unix.O_WRONLY, func(fd int) (string, error) {
			return "", retry(func() error { return unix.Fallocate(fd, 0, op.Off, op.Len) })
		})
	case KRead:
		return withFile(p, unix.O_RDONLY, readAll)
	case KUnlink:
		return "", retry(func() error { return unix.Unlink(p) })
	case KMkdir:
		return "", retry(func() error { return unix.Mkdir(p, op.Mode) })
	case KRmdir:
		return "", retry(func() error { return unix.Rmdir(p) })
	case KRename:
		return "", renameMaybeEmulated(p, p2, op.Flags, emulateEXDEV)
	case KSymlink:
		return "", retry(func() error { return unix.Symlink(op.Path2, p) })
	case KReadlink:
		t, err := os.Readlink(p)
		return t, err
	case KLink:
		return "", retry(func() error { return unix.Link(p, p2) })
	case KMkfifo:
		return "", retry(func() error { return unix.Mknod(p, unix.S_IFIFO|op.Mode, 0) })
	case KChmod:
		return "", retry(func() error { return unix.Chmod(p, op.Mode) })
	case KChown:
		if op.NoFollow {
			return "", retry(func() error { return unix.Lchown(p, op.Uid, op.Gid) })
		}
		return "", retry(func() error { return unix.Chown(p, op.Uid, op.Gid) })
	case KUtimes:
		ts := []unix.Timespec{op.Atime, op.Mtime}
		return "", retry(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, noFollowFlag(op.NoFollow)) })
	default:
		return op.applyMeta(p)
	}
}

// applyMeta runs the xattr and query ops.
func (op Op) applyMeta(p string) (string, error) {
	switch op.Kind {
	case KSetxattr:
		set := unix.Setxattr
		if op.NoFollow {
			set = unix.Lsetxattr
		}
		return "", retry(func() error { return set(p, op.Name, []byte(op.Value), op.Flags) })
	case KGetxattr:
		v, err := getXattr(p, op.Name, !op.NoFollow)
		return fmt.Sprintf("%q", v), err
	case KListxattr:
		names, err := listXattrsFollow(p, !op.NoFollow)
		return strings.Join(names, ","), err
	case KRemovexattr:
		rm := unix.Removexattr
		if op.NoFollow {
			rm = unix.Lremovexattr
		}
		return "", retry(func() error { return rm(p, op.Name) })
	case KStat:
		return statString(p, op.NoFollow)
	case KReaddir:
		return readdirString(p)
	}
	return "", fmt.Errorf("unknown op kind %q", op.Kind)
}

func withFile2(p string, flags int, mode uint32) (string, error) {
	fd, err := open(p, flags, mode)
	if err != nil {
		return "", err
	}
	return "", unix.Close(fd)
}

func noFollowFlag(nofollow bool) int {
	if nofollow {
		return unix.AT_SYMLINK_NOFOLLOW
	}
	return 0
}

func listXattrsFollow(p string, follow bool) ([]string, error) {
	if !follow {
		return listXattrs(p)
	}
	n, err := unix.Listxattr(p, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n+4096)
	n, err = unix.Listxattr(p, buf)
	if err != nil {
		return nil, err
	}
	return sortedXattrNames(buf[:n]), nil
}

func statString(p string, nofollow bool) (string, error) {
	var st unix.Stat_t
	err := retry(func() error {
		if nofollow {
			return unix.Lstat(p, &st)
		}
		return unix.Stat(p, &st)
	})
	if err != nil {
		return "", err
	}
	return describeStat(&st), nil
}

// describeStat is what Stat and FdStat report: what a snapshot compares.
func describeStat(st *unix.Stat_t) string {
	typ := typeName(st.Mode)
	s := fmt.Sprintf("%s %04o %d:%d", typ, st.Mode&0o7777, st.Uid, st.Gid)
	if typ == "symlink" {
		s = fmt.Sprintf("symlink %d:%d", st.Uid, st.Gid)
	}
	if typ != "dir" {
		s += fmt.Sprintf(" size=%d", st.Size)
		if st.Mtim.Sec < ExplicitTimeLimit {
			s += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
	}
	return s
}

func readdirString(p string) (string, error) {
	fd, err := open(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil && err != io.EOF {
		return "", err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name()+":"+fileModeTypeName(e.Type()))
	}
	sort.Strings(names)
	return strings.Join(names, " "), nil
}

func fileModeTypeName(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "file"
	case fs.ModeDir:
		return "dir"
	case fs.ModeSymlink:
		return "symlink"
	case fs.ModeNamedPipe:
		return "fifo"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "chr"
	case fs.ModeDevice:
		return "blk"
	case fs.ModeSocket:
		return "sock"
	}
	return m.Type().String()
}
