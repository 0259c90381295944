package unionfs

import (
	"encoding/binary"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fanWatcher watches whole filesystems with fanotify (FAN_MARK_FILESYSTEM,
// FAN_REPORT_DFID_NAME; needs CAP_SYS_ADMIN in the initial user namespace).
// Each event names a directory by file handle, plus an entry name. Every
// change on the marked filesystems arrives, not only the layers' (the upper
// is often on the same filesystem as /), so the first event from a directory
// costs one open_by_handle_at and one readlink to find where it is; the
// answer, in a layer or not, is cached by handle, and the cache is cleared
// when a directory moves or goes (its path, or the dir, changed). Events of
// the daemon itself (its own writes into the upper; the kernel learns of
// them from the requests) are dropped by pid, before any of that.
type fanWatcher struct {
	u  *unionFS
	fd int
	// marked: the fsid of each marked filesystem, and a descriptor on it
	// for open_by_handle_at; layers[i] are the layer indexes on fs i.
	fsids   [][2]int32
	mountFd []int
	layers  [][]int
	// dirs caches where a directory handle is: key fsid+handle.
	dirs  map[string]dirPlace
	self  int32
	done  chan struct{}
	wake  int // eventfd that ends run
	paths []string
}

// dirPlace is where a directory is: rel in layer li, or nowhere of ours.
type dirPlace struct {
	li  int
	rel string
	ok  bool
}

// maxDirCache bounds the handle cache; past it, it starts again empty.
const maxDirCache = 1 << 16

// fanMask are the events that change what the mount shows. Content
// changes are reported by FAN_CLOSE_WRITE, once per writer, not FAN_MODIFY,
// once per write: the marks cover whole filesystems, and a database or fio
// on the same filesystem as a layer makes millions of writes, each an event
// to read and filter. A writer that keeps a layer file open shows its
// changes when it closes it.
const fanMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO |
	unix.FAN_ATTRIB | unix.FAN_CLOSE_WRITE | unix.FAN_ONDIR

func newFanWatcher(u *unionFS) (*fanWatcher, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_REPORT_DFID_NAME,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &fanWatcher{u: u, fd: fd, wake: wake, dirs: map[string]dirPlace{}, self: int32(os.Getpid()),
		done: make(chan struct{})}, nil
}

// markLayer marks the filesystem of layer li (once per filesystem).
func (f *fanWatcher) markLayer(li int) error {
	l := &f.u.layers[li]
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(l.root, &sfs); err != nil {
		return err
	}
	fsid := [2]int32{sfs.Fsid.Val[0], sfs.Fsid.Val[1]}
	for i, id := range f.fsids {
		if id == fsid {
			f.layers[i] = append(f.layers[i], li)
			f.paths = append(f.paths, l.path)
			return nil
		}
	}
	// The O_PATH root fd cannot be marked itself, nor serve
	// open_by_handle_at (both want a real open file): "." beneath it can.
	if err := unix.FanotifyMark(f.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, fanMask, l.root, "."); err != nil {
		return err
	}
	mfd, err := unix.Openat(l.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f.fsids = append(f.fsids, fsid)
	f.mountFd = append(f.mountFd, mfd)
	f.layers = append(f.layers, []int{li})
	f.paths = append(f.paths, l.path)
	return nil
}

func (f *fanWatcher) used() bool { return len(f.fsids) > 0 }

// discard closes a watcher that never ran.
func (f *fanWatcher) discard() {
	unix.Close(f.fd)
	unix.Close(f.wake)
	for _, fd := range f.mountFd {
		unix.Close(fd)
	}
}

func (f *fanWatcher) learn(string, []int) bool { return true }

func (f *fanWatcher) close() {
	select {
	case <-f.done:
	default:
		unix.Write(f.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// run reads events until close.
func (f *fanWatcher) run() {
	defer f.discard()
	if readEvents(f.fd, f.wake, f.handle) {
		close(f.done)
	}
}

const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// handle dispatches a buffer of events.
func (f *fanWatcher) handle(buf []byte) {
	for len(buf) >= metaLen {
		m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[0]))
		if m.Event_len < uint32(metaLen) || int(m.Event_len) > len(buf) {
			return
		}
		ev := buf[m.Metadata_len:m.Event_len]
		buf = buf[m.Event_len:]
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
			f.u.invalidateAll()
			continue
		}
		if m.Pid == f.self {
			continue // our own change: the kernel knows from the request
		}
		f.event(m.Mask, ev)
	}
}

// event handles one event's info records.
func (f *fanWatcher) event(mask uint64, info []byte) {
	for len(info) >= 4 {
		typ, ln := info[0], int(binary.NativeEndian.Uint16(info[2:4]))
		if ln < 4 || ln > len(info) {
			return
		}
		rec := info[:ln]
		info = info[ln:]
		if typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME && typ != unix.FAN_EVENT_INFO_TYPE_DFID {
			continue
		}
		// header(4) fsid(8) handle_bytes(4) handle_type(4) handle name\0
		if len(rec) < 20 {
			return
		}
		fsid := [2]int32{int32(binary.NativeEndian.Uint32(rec[4:8])), int32(binary.NativeEndian.Uint32(rec[8:12]))}
		hlen := int(binary.NativeEndian.Uint32(rec[12:16]))
		htype := int32(binary.NativeEndian.Uint32(rec[16:20]))
		if 20+hlen > len(rec) {
			return
		}
		handle := rec[20 : 20+hlen]
		var name string
		if typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME {
			rest := rec[20+hlen:]
			if i := indexNul(rest); i >= 0 {
				name = string(rest[:i])
			}
		}
		f.dispatch(mask, fsid, htype, handle, name)
	}
}

func indexNul(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// dispatch maps one directory event to the layer and invalidates.
func (f *fanWatcher) dispatch(mask uint64, fsid [2]int32, htype int32, handle []byte, name string) {
	fsi := -1
	for i, id := range f.fsids {
		if id == fsid {
			fsi = i
		}
	}
	if fsi < 0 {
		return
	}
	key := string(fsid2bytes(fsid)) + string(handle)
	place, ok := f.dirs[key]
	if !ok {
		place = f.locate(fsi, htype, handle)
		if len(f.dirs) >= maxDirCache {
			clear(f.dirs)
		}
		f.dirs[key] = place
	}
	if mask&unix.FAN_ONDIR != 0 && mask&(unix.FAN_MOVED_FROM|unix.FAN_DELETE) != 0 {
		clear(f.dirs) // paths below a moved or removed directory changed
	}
	if !place.ok {
		if f.u.watch != nil {
			f.u.watch.ignored.Add(1)
		}
		return
	}
	var c change
	switch {
	case mask&(unix.FAN_CREATE|unix.FAN_DELETE|unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO) != 0:
		c = changeEntry
	case mask&unix.FAN_CLOSE_WRITE != 0:
		c = changeData
	default:
		c = changeAttr
	}
	f.u.layerChanged(place.li, place.rel, name, c)
}

func fsid2bytes(id [2]int32) []byte {
	var b [8]byte
	binary.NativeEndian.PutUint32(b[:4], uint32(id[0]))
	binary.NativeEndian.PutUint32(b[4:], uint32(id[1]))
	return b[:]
}

// locate finds where a directory handle is: opens it (O_PATH) and reads
// its path, then matches the layers of that filesystem.
func (f *fanWatcher) locate(fsi int, htype int32, handle []byte) dirPlace {
	fd, err := unix.OpenByHandleAt(f.mountFd[fsi], unix.NewFileHandle(htype, handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return dirPlace{}
	}
	defer unix.Close(fd)
	p, err := os.Readlink(fdPath(fd))
	if err != nil {
		return dirPlace{}
	}
	for _, li := range f.layers[fsi] {
		lp := f.u.layers[li].real
		if p == lp {
			return dirPlace{li: li, ok: true}
		}
		if rel, ok := strings.CutPrefix(p, lp+"/"); ok {
			return dirPlace{li: li, rel: rel, ok: true}
		}
	}
	return dirPlace{}
}
