package unionfs

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/cow"
	"github.com/unionfsd/unionfsd/internal/metacopy"
	"github.com/unionfsd/unionfsd/whiteout"
)

// layer is one branch of the union.
type layer struct {
	path string
	// real is path with every symlink resolved (the kernel's name for it,
	// which fanotify's handles resolve to).
	real string
	// root is an O_PATH descriptor of the layer dir: files are opened
	// beneath it with no symlink followed (openInLayer).
	root int
	dev  uint64
	// inoHigh is OR-ed into inode numbers of this layer's files when the
	// layers span several filesystems, so numbers from two filesystems
	// never collide (overlay's xino idea).
	inoHigh uint64
}

// unionFS is the state shared by every node of one mount.
type unionFS struct {
	cfg    Config
	layers []layer // topmost first; layers[0] is the upper when rw
	rw     bool
	cow    *cow.Engine

	// mu orders namespace changes (create, remove, rename, copy-up) against
	// lookups and directory reads. Data I/O on open files does not take it.
	// Take it for writing with lockWrite.
	mu sync.RWMutex
	// gen counts the write locks of mu: a directory listing taken at one
	// generation still describes the layers while gen has not moved.
	gen atomic.Uint64
	// listed are the snapshots of directories being read (listed.go).
	listed listedDirs
	// single[i] is the chain of a non-directory in layer i, shared by all
	// such nodes (chains are never modified in place).
	single [][]int
	// singlePlace[i] is the place of such a node (node.go).
	singlePlace []place
	// copiedIno maps the inode number of a copied-up file in the upper to the
	// identity the file had before copy-up, so st_ino is stable for the life
	// of the mount.
	copiedIno map[uint64]fs.StableAttr
	// reusedIno counts, per upper inode number, the objects that had it and
	// are gone: the generation of the next one.
	reusedIno map[uint64]uint64
	// lowerPT: lower files are passed through in this writable union
	// (lowerpt.go); splitGen numbers the identities given to split names;
	// retiredIDs maps the identities of split-off nodes to the ones their
	// names use instead (one entry per split: they are rare).
	lowerPT    bool
	splitGen   uint64
	retiredIDs map[fs.StableAttr]fs.StableAttr
	// metacopyTrusted: metadata-only copies of this upper may be
	// followed to their lower data (internal/metacopy has the rules).
	metacopyTrusted bool
	// deviceWhiteouts: the upper can hold 0/0 devices (upperformat.go).
	deviceWhiteouts bool
	// dirs keeps recently used layer directories open (dircache.go).
	dirs *dirCache
	// notes are the upper-dir effects of the operation holding mu, for the
	// trace; only used when cfg.Trace is set.
	notes []string
	// watch is the watching of the layer dirs (watch.go); nil until the
	// mount starts it.
	watch *watchState
}

// Root is the root directory node of a union mount.
type Root struct {
	node
}

// upperLayer is the index of the writable layer when the union is rw.
const upperLayer = 0

// NewRoot validates cfg and builds the root node of the union.
func NewRoot(cfg Config) (*Root, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u := &unionFS{cfg: cfg, copiedIno: map[uint64]fs.StableAttr{}, reusedIno: map[uint64]uint64{},
		dirs: newDirCache(pickTimeouts(&cfg, WatchedTimeout).entry), retiredIDs: map[fs.StableAttr]fs.StableAttr{}}
	paths := cfg.Lowers
	if cfg.Upper != "" {
		u.rw = true
		paths = append([]string{cfg.Upper}, cfg.Lowers...)
	}
	if err := u.openLayers(paths); err != nil {
		u.close()
		return nil, err
	}
	if u.rw {
		engine, err := cow.New(cfg.Work, cow.Options{Fsync: cfg.Fsync, SkipXattr: whiteout.IsInternalXattr})
		if err != nil {
			u.close()
			return nil, err
		}
		u.cow = engine
		u.metacopyTrusted = metacopy.Trusted(cfg.Upper, cfg.Metacopy)
		u.deviceWhiteouts = u.probeDeviceWhiteouts()
		u.lowerPT = cfg.LowerPassthrough && cfg.Passthrough && canPassthrough()
	}
	chain, err := u.rootChain()
	if err != nil {
		u.close()
		return nil, err
	}
	r := &Root{node{u: u, at: u.placeOf(chain, "")}}
	return r, nil
}

// openLayers stats every branch and decides how inode numbers are made unique.
func (u *unionFS) openLayers(paths []string) error {
	devIndex := map[uint64]uint64{}
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return fmt.Errorf("layer %s: %w", p, err)
		}
		if _, ok := devIndex[st.Dev]; !ok {
			devIndex[st.Dev] = uint64(len(devIndex))
		}
		root, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("layer %s: %w", p, err)
		}
		real, err := os.Readlink(fdPath(root))
		if err != nil {
			unix.Close(root)
			return fmt.Errorf("layer %s: %w", p, err)
		}
		u.layers = append(u.layers, layer{path: p, real: real, root: root, dev: st.Dev})
	}
	for i := range u.layers {
		u.single = append(u.single, []int{i}[:1:1])
		u.singlePlace = append(u.singlePlace, place{chain: u.single[i]})
	}
	if len(devIndex) > 1 {
		for i := range u.layers {
			u.layers[i].inoHigh = devIndex[u.layers[i].dev] << 56
		}
	}
	return nil
}

// lowerRoots are the root descriptors of the lower layers, topmost first:
// where metacopy pointers are resolved.
func (u *unionFS) lowerRoots() []int {
	var roots []int
	for li := range u.layers {
		if !u.rw || li != upperLayer {
			roots = append(roots, u.layers[li].root)
		}
	}
	return roots
}

// lockWrite takes mu for a change of the layers and moves the generation.
func (u *unionFS) lockWrite() {
	u.mu.Lock()
	u.gen.Add(1)
}

// rootChain lists the layers whose root dirs merge: all of them, down to the
// first opaque one.
func (u *unionFS) rootChain() ([]int, error) {
	var chain []int
	for i := range u.layers {
		chain = append(chain, i)
		if i == len(u.layers)-1 {
			break
		}
		opaque, err := isOpaqueFd(u.layers[i].root)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", u.layers[i].path, err)
		}
		if opaque {
			break
		}
	}
	return chain, nil
}

func (u *unionFS) close() error {
	u.stopWatch()
	u.dirs.closeAll()
	for _, l := range u.layers {
		unix.Close(l.root)
	}
	if u.cow != nil {
		return u.cow.Close()
	}
	return nil
}

// Close releases what NewRoot opened.
func (r *Root) Close() error { return r.u.close() }
