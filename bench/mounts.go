package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
)

// cleanups holds what must be undone however the run ends (error, panic,
// Ctrl-C): mounts and daemons, newest first.
type cleanups struct {
	mu    sync.Mutex
	funcs map[int]func() error
	next  int
}

var pending = &cleanups{funcs: map[int]func() error{}}

// add registers f and returns a func that runs it at most once and
// unregisters it.
func (c *cleanups) add(f func() error) func() error {
	c.mu.Lock()
	id := c.next
	c.next++
	c.funcs[id] = f
	c.mu.Unlock()
	return func() error {
		c.mu.Lock()
		g, ok := c.funcs[id]
		delete(c.funcs, id)
		c.mu.Unlock()
		if ok {
			return g()
		}
		return nil
	}
}

// runAll runs every registered cleanup, newest first.
func (c *cleanups) runAll() {
	for {
		c.mu.Lock()
		best := -1
		for id := range c.funcs {
			if id > best {
				best = id
			}
		}
		var f func() error
		if best >= 0 {
			f = c.funcs[best]
			delete(c.funcs, best)
		}
		c.mu.Unlock()
		if f == nil {
			return
		}
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}
}

// mountedType returns the filesystem type mounted on dir, or "".
func mountedType(dir string) string {
	m, _ := inspect.MountAt(dir)
	return m.FSType
}

// unmount detaches dir, retrying while it is busy (a child that just exited
// may still hold it) and detaching lazily as the last resort, so a run never
// leaves a mount behind.
func unmount(dir string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Unmount(dir, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lerr := unix.Unmount(dir, unix.MNT_DETACH); lerr != nil && !errors.Is(lerr, unix.EINVAL) {
		return fmt.Errorf("umount %s: %w", dir, err)
	}
	return nil
}

// unmountStale unmounts whatever is still mounted under root: leftovers of
// a run that was killed before it could clean up.
func unmountStale(root string) {
	mounts, err := inspect.Mounts()
	if err != nil {
		return
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if p := mounts[i].Point; strings.HasPrefix(p, root+"/") {
			fmt.Fprintf(os.Stderr, "bench: unmounting stale %s (%s)\n", p, mounts[i].FSType)
			if err := unmount(p); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			}
		}
	}
}

// waitMounted polls until dir has a mount of a type starting with typ, the
// process behind it dies (exited is closed) or the timeout passes.
func waitMounted(dir, typ string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if t := mountedType(dir); strings.HasPrefix(t, typ) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: daemon exited before the mount appeared", dir)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s mount after %v", dir, typ, timeout)
		}
	}
}

// dropCaches writes back dirty data and empties the page, dentry and inode
// caches, so the next access reads from the disk (and a FUSE daemon sees
// every lookup again). what is 3 for everything, 2 for dentries and inodes.
func dropCaches(what int) error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte(fmt.Sprintf("%d\n", what)), 0)
}
