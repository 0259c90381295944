package unionfs

import (
	"sync"
	"syscall"

	"github.com/unionfsd/unionfsd/whiteout"
)

// dirSnapshot is what a listing of a directory showed about its
// non-directory entries: the layer each one comes from. READDIRPLUS makes
// go-fuse look up every entry it lists; while no namespace change has
// happened since the listing (same generation of u.mu), such a lookup needs
// one lstat in that layer instead of a walk down the layers for the name and
// its whiteouts (up to two lstats per layer).
type dirSnapshot struct {
	gen    uint64
	layers map[string]int
}

// listedDirs holds the snapshot of each directory open for reading; the
// handle that made one drops it on release, so memory is only spent on
// directories being read.
type listedDirs struct {
	mu   sync.Mutex
	dirs map[*node]*dirSnapshot
}

// newSnapshot records the non-directory entries of a listing made at
// generation gen. Directories are left out: their merge chain (and whether
// they are opaque) needs the full resolve.
func newSnapshot(gen uint64, ents []dirEntry) *dirSnapshot {
	s := &dirSnapshot{gen: gen, layers: make(map[string]int, len(ents))}
	for _, e := range ents {
		if e.dtype != syscall.DT_DIR && e.dtype != syscall.DT_UNKNOWN {
			s.layers[e.name] = e.layer
		}
	}
	return s
}

func (l *listedDirs) set(n *node, s *dirSnapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dirs == nil {
		l.dirs = map[*node]*dirSnapshot{}
	}
	l.dirs[n] = s
}

// drop forgets n's snapshot if it is still s (another handle may have
// listed the directory since).
func (l *listedDirs) drop(n *node, s *dirSnapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dirs[n] == s {
		delete(l.dirs, n)
	}
}

func (l *listedDirs) get(n *node) *dirSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dirs[n]
}

// resolveListed answers a lookup of name in directory n into f from the
// snapshot of n's current listing, or returns false when the full resolve
// is needed. u.mu is held for reading.
func (n *node) resolveListed(rel, name string, f *found) bool {
	s := n.u.listed.get(n)
	if s == nil || s.gen != n.u.gen.Load() {
		return false
	}
	li, ok := s.layers[name]
	if !ok {
		return false
	}
	dir, release, err := n.u.dirFd(li, rel)
	if err != nil {
		return false
	}
	defer release()
	if lstatAt(dir, name, &f.st) != nil {
		return false
	}
	if f.isDir() || whiteout.IsOverlayWhiteoutMode(f.st.Mode, f.st.Rdev) {
		return false // changed behind our back: let resolve sort it out
	}
	f.chain = n.u.single[li]
	if n.u.rw && li == upperLayer {
		var err error
		if f.data, err = n.u.metacopyData(dir, name, &f.st); err != nil {
			return false // the full resolve reports it
		}
	}
	return true
}
