package difftest

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NumSlots is how many open file descriptors a sequence can hold at once.
const NumSlots = 3

// Env is what ops run against on one side: the mount root, how renames
// behave, and the descriptors that fd ops (Open, FdWrite, ...) share.
type Env struct {
	Root         string
	EmulateEXDEV bool
	fds          [NumSlots]int // -1: empty
}

// NewEnv returns an Env with no descriptors open.
func NewEnv(root string, emulateEXDEV bool) *Env {
	e := &Env{Root: root, EmulateEXDEV: emulateEXDEV}
	for i := range e.fds {
		e.fds[i] = -1
	}
	return e
}

// CloseAll closes every descriptor still held (before unmounting).
func (e *Env) CloseAll() {
	for i, fd := range e.fds {
		if fd >= 0 {
			unix.Close(fd)
			e.fds[i] = -1
		}
	}
}

func (e *Env) fd(slot int) (int, error) {
	if slot < 0 || slot >= NumSlots || e.fds[slot] < 0 {
		return -1, unix.EBADF
	}
	return e.fds[slot], nil
}

// Fd ops: open a path into a slot, then use or close the descriptor.

// Open opens path into slot (closing what the slot held) with the flags
// (O_RDONLY, O_WRONLY or O_RDWR, optionally O_APPEND, O_TRUNC, O_CREAT).
func Open(slot int, path string, flags int) Op {
	return Op{Kind: KOpen, Slot: slot, Path: path, Flags: flags, Mode: 0o644}
}
func FdWrite(slot int, off, n int64, seed uint32) Op {
	return Op{Kind: KFdWrite, Slot: slot, Off: off, Len: n, Seed: seed}
}
func FdRead(slot int) Op                 { return Op{Kind: KFdRead, Slot: slot} }
func FdStat(slot int) Op                 { return Op{Kind: KFdStat, Slot: slot} }
func FdTruncate(slot int, size int64) Op { return Op{Kind: KFdTruncate, Slot: slot, Len: size} }
func FdChmod(slot int, mode uint32) Op   { return Op{Kind: KFdChmod, Slot: slot, Mode: mode} }
func FdChown(slot, uid, gid int) Op      { return Op{Kind: KFdChown, Slot: slot, Uid: uid, Gid: gid} }

// FdUtimes is futimens: times as in Utimes.
func FdUtimes(slot int, asec, ansec, msec, mnsec int64) Op {
	return Op{Kind: KFdUtimes, Slot: slot,
		Atime: unix.Timespec{Sec: asec, Nsec: ansec}, Mtime: unix.Timespec{Sec: msec, Nsec: mnsec}}
}
func Close(slot int) Op { return Op{Kind: KClose, Slot: slot} }

// AsUser runs op with fsuid and fsgid uid, the supplementary groups
// userGroups gives uid (none for others) and so none of root's file-system
// capabilities: permission checks apply.
func AsUser(uid int, op Op) Op {
	op.User = uid
	return op
}

func (e *Env) applyFd(op Op) (string, error) {
	if op.Kind == KOpen {
		return "", e.open(op)
	}
	fd, err := e.fd(op.Slot)
	if err != nil {
		return "", err
	}
	switch op.Kind {
	case KFdWrite:
		return writeAll(fd, Data(op.Seed, op.Len), op.Off, op.Flags&unix.O_APPEND == 0)
	case KFdRead:
		// Drop the cached pages first, so that the read reaches the file
		// the descriptor really reads (a FUSE daemon's handle), not pages
		// another descriptor wrote.
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
		return preadAll(fd)
	case KFdStat:
		var st unix.Stat_t
		if err := retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
			return "", err
		}
		return describeStat(&st), nil
	case KFdTruncate:
		return "", retry(func() error { return unix.Ftruncate(fd, op.Len) })
	case KFdChmod:
		return "", retry(func() error { return unix.Fchmod(fd, op.Mode) })
	case KFdChown:
		return "", retry(func() error { return unix.Fchown(fd, op.Uid, op.Gid) })
	case KFdUtimes:
		ts := []unix.Timespec{op.Atime, op.Mtime}
		return "", retry(func() error { return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH) })
	case KClose:
		e.fds[op.Slot] = -1
		return "", unix.Close(fd)
	}
	return "", fmt.Errorf("unknown fd op %q", op.Kind)
}

func (e *Env) open(op Op) error {
	if op.Slot < 0 || op.Slot >= NumSlots {
		return unix.EBADF
	}
	if old := e.fds[op.Slot]; old >= 0 {
		unix.Close(old)
		e.fds[op.Slot] = -1
	}
	fd, err := open(e.path(op.Path), op.Flags, op.Mode)
	if err != nil {
		return err
	}
	e.fds[op.Slot] = fd
	return nil
}

// preadAll reads the whole file from offset 0 without moving the offset.
func preadAll(fd int) (string, error) {
	var data []byte
	buf := make([]byte, 64<<10)
	for {
		var n int
		err := retry(func() (err error) {
			n, err = unix.Pread(fd, buf, int64(len(data)))
			return err
		})
		if err != nil {
			return "", err
		}
		if n == 0 {
			return fmt.Sprintf("read %d sha=%s", len(data), shortHash(data)), nil
		}
		data = append(data, buf[:n]...)
	}
}

// SharedGID is the group the two users of SharedLayers have in common.
const SharedGID = 2000

// User1 and User2 are two unprivileged users who share SharedGID
// (supplementary) and have a primary group of their own (gid = uid).
const (
	User1 = 1500
	User2 = 1501
)

// userGroups are the supplementary groups of the users ops run as.
var userGroups = map[int][]uint32{
	User1: {User1, SharedGID},
	User2: {User2, SharedGID},
}

// becomeUser switches the calling goroutine's thread to uid/gid (and the
// groups userGroups lists) for file system access. The thread stays locked
// and is thrown away when the goroutine ends (Go does that to a thread
// locked at goroutine exit), so nothing else ever runs with these
// credentials. FUSE servers read a caller's groups from /proc/TID/status,
// which is per thread.
func becomeUser(uid int) error {
	runtime.LockOSThread()
	// Raw syscalls: the syscall package would change every thread.
	n := len(userGroups[uid])
	groups := make([]uint32, n+1) // one spare: &groups[0] also when n is 0
	copy(groups, userGroups[uid])
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(n), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(uid), 0, 0); e != 0 {
		return fmt.Errorf("setfsgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0); e != 0 {
		return fmt.Errorf("setfsuid: %w", e)
	}
	return nil
}
