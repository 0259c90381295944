package unionfs

import (
	"errors"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inoWatcher watches directories with inotify, for users without
// CAP_SYS_ADMIN or filesystems fanotify refuses. inotify watches one
// directory at a time, so it watches, in each layer holding it, every
// directory the kernel has looked up (the daemon learns them in Lookup):
// the kernel caches nothing under a directory it has not looked up. A
// directory beyond fs.inotify.max_user_watches is not watched: names and
// attributes under it get the short timeouts (said once on stderr).
//
// inotify events carry no pid, so the daemon's own changes to the upper
// arrive too; an added name whose node the kernel already has with the
// same inode (a create or copy-up through the mount) is dropped, the rest
// cost one notification each.
type inoWatcher struct {
	u      *unionFS
	fd     int
	layers map[int]bool // the layers this watcher serves

	mu  sync.Mutex
	wds map[int32]dirPlace // watch → directory
	dir map[watchKey]int32 // directory → watch
	wk  int                // eventfd that ends run
}

type watchKey struct {
	li  int
	rel string
}

// inoMask are the events that change what the mount shows. IN_MODIFY is
// left out: without a pid to tell them apart, each of the daemon's own
// writes would cost a notification; IN_CLOSE_WRITE reports content changes
// when the writer closes the file.
const inoMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR

// newInoWatcher watches the roots of layers; errs[li] says why layer li
// cannot be watched (nil: it is). The watcher is nil when inotify itself
// is refused.
func newInoWatcher(u *unionFS, layers []int) (*inoWatcher, map[int]error) {
	errs := map[int]error{}
	fail := func(err error) (*inoWatcher, map[int]error) {
		for _, li := range layers {
			errs[li] = err
		}
		return nil, errs
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return fail(err)
	}
	wk, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return fail(err)
	}
	w := &inoWatcher{u: u, fd: fd, wk: wk, layers: map[int]bool{}, wds: map[int32]dirPlace{},
		dir: map[watchKey]int32{}}
	for _, li := range layers {
		ok, err := w.add(li, "")
		if !ok && err == nil {
			err = errors.New("cannot open the layer dir")
		}
		if err != nil {
			errs[li] = err
			continue
		}
		w.layers[li] = true
	}
	return w, errs
}

// discard closes a watcher that never ran.
func (w *inoWatcher) discard() {
	unix.Close(w.fd)
	unix.Close(w.wk)
}

func (w *inoWatcher) paths() []string {
	var out []string
	for li := range w.u.layers {
		if w.layers[li] {
			out = append(out, w.u.layers[li].path)
		}
	}
	return out
}

// add watches rel in layer li, opened beneath the layer with no symlink
// followed (the watch is added through /proc/self/fd, never by a path
// built from names). A directory missing in the layer needs no watch: its
// creation is an event of its parent.
func (w *inoWatcher) add(li int, rel string) (bool, error) {
	k := watchKey{li, rel}
	w.mu.Lock()
	_, have := w.dir[k]
	w.mu.Unlock()
	if have {
		return true, nil
	}
	fd, err := w.u.openInLayer(li, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return isMissing(err) || errors.Is(err, unix.ENOTDIR), nil
	}
	wd, err := unix.InotifyAddWatch(w.fd, fdPath(fd), inoMask)
	unix.Close(fd)
	if err != nil {
		return false, err
	}
	w.mu.Lock()
	w.wds[int32(wd)] = dirPlace{li: li, rel: rel, ok: true}
	w.dir[k] = int32(wd)
	w.mu.Unlock()
	return true, nil
}

// learn watches the directory rel in each of its layers this watcher
// serves. false: some could not be watched (the limit).
func (w *inoWatcher) learn(rel string, chain []int) bool {
	all := true
	for _, li := range chain {
		if !w.layers[li] {
			continue
		}
		ok, err := w.add(li, rel)
		if !ok {
			all = false
			w.u.watch.unwatchedLimit(w.u, w.u.layerPath(li, rel), err)
		}
	}
	return all
}

func (w *inoWatcher) close() {
	unix.Write(w.wk, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// run reads events until close.
func (w *inoWatcher) run() {
	defer func() {
		unix.Close(w.fd)
		unix.Close(w.wk)
	}()
	readEvents(w.fd, w.wk, w.handle)
}

const inoEventLen = int(unsafe.Sizeof(unix.InotifyEvent{}))

func (w *inoWatcher) handle(buf []byte) {
	for len(buf) >= inoEventLen {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := inoEventLen + int(ev.Len)
		if end > len(buf) {
			return
		}
		name := string(buf[inoEventLen:end])
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		buf = buf[end:]
		w.event(ev.Wd, ev.Mask, name)
	}
}

func (w *inoWatcher) event(wd int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.u.invalidateAll()
		return
	}
	w.mu.Lock()
	place, ok := w.wds[wd]
	if mask&unix.IN_IGNORED != 0 {
		delete(w.wds, wd)
		if ok {
			delete(w.dir, watchKey{place.li, place.rel})
		}
	}
	if ok && mask&unix.IN_ISDIR != 0 && mask&unix.IN_MOVED_FROM != 0 {
		w.forgetBelowLocked(place.li, joinRel(place.rel, name))
	}
	w.mu.Unlock()
	if !ok || mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
		return // the parent's watch reports the name
	}
	var c change
	switch {
	case mask&(unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO) != 0:
		c = changeEntry
		if mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 && w.u.alreadyKnown(place.li, place.rel, name) {
			return
		}
	case mask&(unix.IN_MODIFY|unix.IN_CLOSE_WRITE) != 0:
		c = changeData
	default:
		c = changeAttr
	}
	if name == "" {
		return // an event on the watched dir itself; its parent reports it by name
	}
	w.u.layerChanged(place.li, place.rel, name, c)
}

// forgetBelowLocked drops the watches of a directory that moved away, and
// of those under it: their paths are gone. They are watched again when the
// kernel looks the directories up at their new place.
func (w *inoWatcher) forgetBelowLocked(li int, rel string) {
	for wd, p := range w.wds {
		if p.li == li && (p.rel == rel || strings.HasPrefix(p.rel, rel+"/")) {
			unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.wds, wd)
			delete(w.dir, watchKey{li, p.rel})
		}
	}
}
