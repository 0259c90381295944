package unionfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// Watching layer dirs (Config.Watch). The kernel caches names, attributes
// and misses of a FUSE mount for as long as we allow. Changes made through
// the mount it sees itself; changes made directly in a layer dir it cannot.
// With watching on, the daemon learns of those from fanotify or inotify and
// tells the kernel to drop what it cached (FUSE_NOTIFY_INVAL_ENTRY for a
// name, FUSE_NOTIFY_INVAL_INODE for attributes and cached pages), so the
// cache timeouts can be long: a repeated find then costs no request at all.

// Values of Config.Watch.
const (
	WatchAuto     = "auto"     // fanotify when allowed, short timeouts otherwise
	WatchFanotify = "fanotify" // fanotify filesystem marks; inotify for what they cannot cover
	WatchInotify  = "inotify"  // inotify watches on the directories the kernel has looked up
	WatchOff      = "off"      // no watching: short timeouts bound how stale the cache gets
)

// TimeoutAuto, as a cache timeout in Config, is the default: WatchedTimeout
// where the layers are watched, ShortTimeout where they are not (watch=off,
// or watching impossible). Any other value is used as given, watched or not.
const TimeoutAuto time.Duration = -1

// WatchedTimeout is how long the kernel keeps names and attributes of
// watched layers. fuse-overlayfs keeps them without a limit (it never learns
// of layer changes); a day bounds how long an event that was lost without
// an overflow notice can leave a stale entry, and costs nothing measurable:
// the expensive case, re-looking up a whole tree, happens once a day.
const WatchedTimeout = 24 * time.Hour

// ShortTimeout is the default cache timeout where nothing is watched.
const ShortTimeout = time.Second

// coalesce is how long a watcher waits after reading a batch of events
// before it reads again, so that events arriving one by one (a busy
// filesystem next to the layers: every change on it arrives with fanotify)
// are read in batches, not with a wake-up each. It adds at most this much
// to the time a direct change takes to show.
const coalesce = 5 * time.Millisecond

// timeouts are the three kernel cache timeouts of a reply.
type timeouts struct{ entry, attr, negative time.Duration }

// pick resolves TimeoutAuto in cfg's timeouts to def.
func pickTimeouts(cfg *Config, def time.Duration) timeouts {
	pick := func(d time.Duration) time.Duration {
		if d < 0 {
			return def
		}
		return d
	}
	return timeouts{pick(cfg.EntryTimeout), pick(cfg.AttrTimeout), pick(cfg.NegativeTimeout)}
}

// change is what an event says happened to a name in a layer dir.
type change uint8

const (
	changeEntry change = 1 << iota // the name was added, removed or renamed
	changeData                     // the file's content changed (and so its attributes)
	changeAttr                     // only its attributes changed
)

// watcher is one source of layer events.
type watcher interface {
	// learn is told of a directory of the merged tree the kernel now knows,
	// with the layers holding it; it reports false when it could not watch
	// it (inotify's limit), so the node gets short timeouts.
	learn(rel string, chain []int) bool
	close()
}

// watchState is the mount's watching.
type watchState struct {
	root *node
	// long are the timeouts of what is watched, short of what is not.
	long, short timeouts
	// watchers, by kind; nil when unused. byLayer[li] is the one watching
	// layer li, nil when layer li is not watched at all.
	fan     *fanWatcher
	ino     *inoWatcher
	byLayer []watcher
	// limitOnce reports the first directory inotify could not watch.
	limitOnce sync.Once
	// events counts the layer events that led to invalidations of a name
	// or file, ignored the ones that did not concern the mount (tests read
	// them).
	events, ignored atomic.Uint64
	// started is when watching started (node.wroteAt counts from it).
	started time.Time
}

// allWatched reports whether every layer is watched at least at its root.
func (w *watchState) allWatched() bool {
	for _, x := range w.byLayer {
		if x == nil {
			return false
		}
	}
	return true
}

// warnf prints one line about watching on stderr (or Config.Warn).
func (u *unionFS) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if u.cfg.Warn != nil {
		u.cfg.Warn(msg)
		return
	}
	fmt.Fprintf(os.Stderr, "unionfsd: %s\n", msg)
}

// startWatch sets up watching as cfg.Watch asks, before the mount serves,
// so that no change made after the mount is missed. Layers that cannot be
// watched get short timeouts; startWatch says so in one line.
func (r *Root) startWatch() {
	u := r.u
	w := &watchState{root: &r.node, byLayer: make([]watcher, len(u.layers)), started: time.Now()}
	u.watch = w
	w.long = pickTimeouts(&u.cfg, WatchedTimeout)
	w.short = pickTimeouts(&u.cfg, ShortTimeout)
	mode := u.cfg.Watch
	if mode == "" || mode == WatchOff {
		w.long = w.short
		return
	}
	why := make([]string, len(u.layers)) // why layer li is not watched by fanotify, then inotify
	if mode == WatchAuto || mode == WatchFanotify {
		fan, err := newFanWatcher(u)
		for li := range u.layers {
			lerr := err
			if lerr == nil {
				if lerr = fan.markLayer(li); lerr == nil {
					w.byLayer[li] = fan
					continue
				}
			}
			why[li] = "fanotify: " + lerr.Error()
		}
		if fan != nil && !fan.used() {
			fan.discard()
		} else if fan != nil {
			w.fan = fan
		}
	}
	var rest []int
	for li, x := range w.byLayer {
		if x == nil {
			rest = append(rest, li)
		}
	}
	if mode == WatchAuto && w.fan == nil {
		// inotify events carry no pid: the daemon's own creates in the
		// upper come back as "direct" changes, and the invalidation of a
		// fresh entry that is already a mountpoint (a container's bind
		// target) makes the kernel detach that mount (d_invalidate). auto
		// therefore keeps the short timeouts where fanotify is unavailable.
		w.long = w.short
		return
	}
	if len(rest) > 0 {
		ino, errs := newInoWatcher(u, rest)
		for _, li := range rest {
			if errs[li] == nil {
				w.byLayer[li] = ino
				continue
			}
			why[li] = strings.TrimPrefix(why[li]+", ", ", ") + "inotify: " + errs[li].Error()
			if errors.Is(errs[li], syscall.ENOSPC) {
				why[li] += " (fs.inotify.max_user_watches)"
			}
		}
		if ino != nil && len(ino.layers) > 0 {
			w.ino = ino
		} else if ino != nil {
			ino.discard()
		}
	}
	if !w.allWatched() {
		var unwatched []string
		for li, x := range w.byLayer {
			if x == nil {
				unwatched = append(unwatched, fmt.Sprintf("%s (%s)", u.layers[li].path, why[li]))
			}
		}
		u.warnf("watch=%s: not watching %s: direct changes in the layers show within the %v cache timeout",
			mode, strings.Join(unwatched, ", "), w.short.entry)
		w.long = w.short
	} else if mode == WatchFanotify && w.ino != nil {
		var fell []string
		for _, li := range rest {
			fell = append(fell, fmt.Sprintf("%s (%s)", u.layers[li].path, why[li]))
		}
		u.warnf("watch=fanotify: watching %s with inotify", strings.Join(fell, ", "))
	}
	if w.fan != nil {
		go w.fan.run()
	}
	if w.ino != nil {
		go w.ino.run()
	}
}

// stopWatch ends watching; the mount is gone.
func (u *unionFS) stopWatch() {
	if u.watch == nil {
		return
	}
	if u.watch.fan != nil {
		u.watch.fan.close()
	}
	if u.watch.ino != nil {
		u.watch.ino.close()
	}
}

// Watching reports how the mount watches its layers: for each layer,
// "fanotify", "inotify" or "" (not watched).
func (r *Root) Watching() []string {
	out := make([]string, len(r.u.layers))
	if r.u.watch == nil {
		return out
	}
	for li, x := range r.u.watch.byLayer {
		switch x.(type) {
		case *fanWatcher:
			out[li] = WatchFanotify
		case *inoWatcher:
			out[li] = WatchInotify
		}
	}
	return out
}

// learnDir tells the watchers of the layers of a directory the kernel now
// knows; it reports whether all of them watch it.
func (u *unionFS) learnDir(rel string, chain []int) bool {
	w := u.watch
	if w == nil || w.ino == nil {
		return true // fanotify watches whole filesystems
	}
	return w.ino.learn(rel, chain)
}

// unwatchedLimit is called when inotify could not watch a directory.
func (w *watchState) unwatchedLimit(u *unionFS, path string, err error) {
	w.limitOnce.Do(func() {
		u.warnf("watch: cannot watch %s (%v; see fs.inotify.max_user_watches): direct changes under "+
			"directories past the limit show after %v, not at once", path, err, w.short.entry)
	})
}

// nodeAt finds the node of the merged tree at rel, if the kernel knows it.
func (u *unionFS) nodeAt(rel string) *fs.Inode {
	u.mu.RLock()
	defer u.mu.RUnlock()
	in := u.watch.root.EmbeddedInode()
	for rel != "" {
		name, rest, _ := strings.Cut(rel, "/")
		if in = in.GetChild(name); in == nil {
			return nil
		}
		rel = rest
	}
	return in
}

// layerChanged drops what the kernel caches about name in the directory rel
// after event c in layer li. It must not hold u.mu while it notifies: the
// kernel takes the directory's lock for an entry invalidation, which an
// operation waiting on u.mu may hold.
func (u *unionFS) layerChanged(li int, rel, name string, c change) {
	dir := u.nodeAt(rel)
	if dir == nil {
		u.watch.ignored.Add(1)
		return // the kernel has nothing cached below it
	}
	if name == "" {
		// An event on the directory itself (overflow recovery, inotify's
		// self events): its attributes and cached listing.
		dir.NotifyContent(0, 0)
		return
	}
	if name == whiteout.OpaqueName {
		// The directory's merge chain changed: have the kernel look it
		// up again (childInode refreshes the chain), and every child.
		u.invalidateChildren(dir)
		if p, parent := dir.Parent(); parent != nil {
			parent.NotifyEntry(p)
		}
		return
	}
	if target, ok := whiteout.Target(name); ok {
		name, c = target, changeEntry
	} else if whiteout.IsWhiteoutName(name) {
		return // markers and our workdir never show
	}
	child := dir.GetChild(name)
	if c&changeEntry == 0 && u.rw && li == upperLayer && child != nil && writtenThroughMount(child) {
		u.watch.ignored.Add(1)
		return
	}
	u.watch.events.Add(1)
	switch {
	case c&changeEntry != 0:
		dir.NotifyEntry(name)
		dir.NotifyContent(0, 0) // mtime, nlink, cached listing
		if child != nil {
			child.NotifyContent(0, 0) // still open: nlink, or a new layer answers
		}
	case child == nil:
	case child.IsDir():
		// A directory's mode, times or opaque xattr: look it up again, so
		// that its merge chain is computed anew.
		dir.NotifyEntry(name)
		child.NotifyContent(0, 0)
	case c&changeData != 0:
		child.NotifyContent(0, 0)
		u.invalidateLinks(child, 0)
	default:
		child.NotifyContent(-1, 0) // attributes only
		u.invalidateLinks(child, -1)
	}
}

// invalidateLinks passes a content or attribute change of a hard-linked
// lower file on to its other names: each is an inode of its own in the
// mount (identity), and the event names one. They share the inode number;
// the walk over the known tree happens only for such files.
func (u *unionFS) invalidateLinks(changed *fs.Inode, off int64) {
	id := changed.StableAttr()
	if id.Gen == 0 || id.Mode == syscall.S_IFDIR {
		return
	}
	cn, ok := changed.Operations().(*node)
	if !ok || u.inUpper(cn.getChain()) {
		return // upper inodes reuse numbers with their own generations
	}
	var walk func(dir *fs.Inode)
	walk = func(dir *fs.Inode) {
		for _, child := range dir.Children() {
			switch {
			case child.IsDir():
				walk(child)
			case child != changed && child.StableAttr().Ino == id.Ino:
				child.NotifyContent(off, 0)
			}
		}
	}
	walk(u.watch.root.EmbeddedInode())
}

// invalidateChildren drops the kernel's cache of every known child of dir.
func (u *unionFS) invalidateChildren(dir *fs.Inode) {
	for name, child := range dir.Children() {
		dir.NotifyEntry(name)
		child.NotifyContent(0, 0)
	}
	dir.NotifyContent(0, 0)
}

// invalidateAll drops everything the kernel caches about the mount: an
// event queue overflowed, so changes may have been missed.
func (u *unionFS) invalidateAll() {
	var walk func(dir *fs.Inode)
	walk = func(dir *fs.Inode) {
		for _, child := range dir.Children() {
			if child.IsDir() {
				walk(child)
			}
		}
		u.invalidateChildren(dir)
	}
	walk(u.watch.root.EmbeddedInode())
}

// setReplyTimeouts gives a lookup reply from directory n the short timeouts
// when n is not watched; watched replies keep the mount's (long) ones.
func (n *node) setReplyTimeouts(out *fuse.EntryOut, found bool) {
	if !n.unwatched.Load() {
		return
	}
	short := n.u.watch.short
	if !found {
		out.SetEntryTimeout(short.negative)
		return
	}
	out.SetEntryTimeout(short.entry)
	out.SetAttrTimeout(short.attr)
}

// alreadyKnown reports whether a name added to the upper is one the kernel
// already has, as the same file: the daemon made it through the mount (a
// create, or a copy-up, which keeps the node). inotify cannot say who made
// a change; this keeps the daemon's own creates from costing a
// notification each.
func (u *unionFS) alreadyKnown(li int, rel, name string) bool {
	if !u.rw || li != upperLayer {
		return false
	}
	dir := u.nodeAt(rel)
	if dir == nil {
		return false
	}
	child := dir.GetChild(name)
	if child == nil {
		return false
	}
	cn, ok := child.Operations().(*node)
	if !ok || !u.inUpper(cn.getChain()) {
		return false
	}
	var st syscall.Stat_t
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.lstat(li, joinRel(rel, name), &st) != nil {
		return false
	}
	return u.inoOf(li, st.Ino) == child.StableAttr().Ino
}

// ownWriteWindow is how long after a writable handle on an upper file was
// closed through the mount a content or attribute event of that file is
// taken for the kernel's own: writes through FUSE passthrough are made by
// the kernel in the writer's name, so their events carry the writer's pid,
// not the daemon's, and fanotify's pid filter cannot drop them. An untar
// through the mount would otherwise cost one invalidation per file.
const ownWriteWindow = time.Second

// writtenThroughMount reports whether the upper file of child is open
// through the mount, or was written through it within ownWriteWindow: its
// content and attribute events are then the kernel's own writes. A direct
// change to an upper file open through the mount at that moment shows when
// the next event for it comes, or after the cache timeout.
func writtenThroughMount(child *fs.Inode) bool {
	n, ok := child.Operations().(*node)
	if !ok {
		return false
	}
	n.mu.Lock()
	open, at := n.passthroughOpen+n.cachedOpen > 0, n.wroteAt
	n.mu.Unlock()
	return open || at != 0 && n.u.watch.tick()-at < int32(ownWriteWindow/wroteTick)
}

// wroteTick is the unit of node.wroteAt.
const wroteTick = 10 * time.Millisecond

// tick is the time since the watch started, in wroteTicks (at least 1).
func (w *watchState) tick() int32 {
	return int32(time.Since(w.started)/wroteTick) + 1
}

// noteUpperClose records the close of an upper file descriptor that could
// write (see writtenThroughMount).
func (n *node) noteUpperClose(fd int) {
	if n.u.watch == nil || n.u.watch.fan == nil && n.u.watch.ino == nil {
		return
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_ACCMODE != unix.O_RDONLY {
		now := n.u.watch.tick()
		n.mu.Lock()
		n.wroteAt = now
		n.mu.Unlock()
	}
}

// readEvents reads batches of events from fd (fanotify or inotify) and
// hands each to handle, until wake becomes readable (it then reports true)
// or polling fails. After a short read it sleeps for coalesce, so that a
// burst of changes costs one wake-up per batch instead of one per event.
func readEvents(fd, wake int, handle func([]byte)) (woken bool) {
	buf := make([]byte, 64<<10)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if fds[1].Revents != 0 {
			return true
		}
		n, err := unix.Read(fd, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return false
		}
		handle(buf[:n])
		if n < len(buf)/2 {
			time.Sleep(coalesce)
		}
	}
}
