package unionfs

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// dirCache keeps recently used layer directories open (O_PATH), so that an
// operation on a name finds its parent directory without an openat2 and a
// close per layer: a create or a lookup in a directory that was just used
// costs no path resolution at all.
//
// Each descriptor was opened as every other one is (layerfs.go: openat2
// beneath the layer root, no symlink followed), so it names a directory
// object that was inside the layer when it was opened. It stays correct for
// that object; what can go stale is the path it was opened by:
//   - Renames and removals through the mount drop the entries of the paths
//     they change (dropTree), while they hold u.mu for writing.
//   - A directory renamed, removed or replaced directly in a layer dir is
//     noticed when the kernel looks its name up again (its entry timed
//     out: forgetDir), and at the latest when the cache entry expires: an
//     entry serves for at most ttl after its open, the kernel's own entry
//     timeout capped at a second. A directory removed directly is empty of
//     entries and refuses new ones (ENOENT), like a fresh resolve.
//
// A directory moved directly out of a layer can still get the operations of
// the rest of its entry's ttl: moving it needs write access to both its
// layer parent and the new place, so the mover controls both already, and
// no symlink is followed from the descriptor either way (a directory swapped
// for a symlink is never entered: TestCachedDirSwappedForSymlink).
type dirCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[dirKey]*cachedDir
	lru     list.List // of *cachedDir, most recently used first
	closed  bool
}

type dirKey struct {
	layer int
	rel   string
}

// cachedDir is one open directory. It is closed once it has left the cache
// and the last user has released it.
type cachedDir struct {
	key    dirKey
	fd     int
	opened time.Time
	users  int
	gone   bool // out of the cache: close when users drops to 0
	elem   *list.Element
}

// maxCachedDirs bounds the descriptors the cache holds (go's runtime raises
// RLIMIT_NOFILE's soft limit to the hard one, normally far above this).
const maxCachedDirs = 512

// maxDirTTL caps how long an entry serves, whatever the kernel's timeout.
const maxDirTTL = time.Second

func newDirCache(entryTimeout time.Duration) *dirCache {
	ttl := min(entryTimeout, maxDirTTL)
	c := &dirCache{ttl: ttl, max: maxCachedDirs, entries: map[dirKey]*cachedDir{}}
	c.lru.Init()
	return c
}

// noRelease is the release func of a descriptor that is not the caller's.
func noRelease() {}

// dirFd returns an O_PATH descriptor of the directory rel of layer li and the
// func that releases it; the caller must not close the descriptor.
func (u *unionFS) dirFd(li int, rel string) (int, func(), error) {
	c := u.dirs
	if c == nil || c.ttl <= 0 {
		fd, err := u.openDir(li, rel)
		if err != nil {
			return -1, noRelease, err
		}
		return fd, func() { unix.Close(fd) }, nil
	}
	key := dirKey{li, rel}
	now := time.Now()
	c.mu.Lock()
	if e := c.entries[key]; e != nil {
		if now.Sub(e.opened) < c.ttl {
			e.users++
			c.lru.MoveToFront(e.elem)
			c.mu.Unlock()
			return e.fd, func() { c.release(e) }, nil
		}
		c.removeLocked(e)
	}
	c.mu.Unlock()
	fd, err := u.openDir(li, rel)
	if err != nil {
		return -1, noRelease, err
	}
	e := &cachedDir{key: key, fd: fd, opened: now, users: 1}
	c.mu.Lock()
	if c.closed || c.entries[key] != nil {
		// Closed, or another op cached the same dir meanwhile: ours is
		// only for this call.
		c.mu.Unlock()
		return fd, func() { unix.Close(fd) }, nil
	}
	c.entries[key] = e
	e.elem = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		c.removeLocked(c.lru.Back().Value.(*cachedDir))
	}
	c.mu.Unlock()
	return fd, func() { c.release(e) }, nil
}

func (c *dirCache) release(e *cachedDir) {
	c.mu.Lock()
	e.users--
	closeNow := e.gone && e.users == 0
	c.mu.Unlock()
	if closeNow {
		unix.Close(e.fd)
	}
}

// removeLocked takes e out of the cache; it is closed now or by its last
// user.
func (c *dirCache) removeLocked(e *cachedDir) {
	if e.gone {
		return
	}
	e.gone = true
	delete(c.entries, e.key)
	c.lru.Remove(e.elem)
	if e.users == 0 {
		unix.Close(e.fd)
	}
}

// dropTree forgets the directory rel and everything below it, in every
// layer: its path no longer leads to the objects the entries hold. Callers
// hold u.mu for writing (renames, removals).
func (u *unionFS) dropTree(rel string) {
	c := u.dirs
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if rel == "" || k.rel == rel || strings.HasPrefix(k.rel, rel) && k.rel[len(rel)] == '/' {
			c.removeLocked(e)
		}
	}
}

// forgetDir forgets the directory rel in every layer (not what is below
// it). A LOOKUP of a directory calls it: the kernel looks a name up again
// when its entry timed out, and the daemon then opens the directory afresh
// too, finding what a direct change in a layer put there.
func (u *unionFS) forgetDir(rel string) {
	c := u.dirs
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for li := range u.layers {
		if e := c.entries[dirKey{li, rel}]; e != nil {
			c.removeLocked(e)
		}
	}
}

// closeAll empties the cache for good: the layers are being released.
func (c *dirCache) closeAll() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.entries {
		c.removeLocked(e)
	}
}
