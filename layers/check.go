package layers

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// What a killed crun-lite can leave in the store (every step before is
// atomic: staging, then renames, then the index):
//
//   - staging dirs in tmp/ of a killed import or commit, and gc-* trash
//     of a killed rmi;
//   - .tmp-images.json-* of a killed index write;
//   - blobs and layers published by an import killed before its index
//     write, or left by an rmi killed after its index write: orphans.
//
// All of that is repairable: deleting it loses nothing any image or
// container refers to. An image whose blob or layer is missing is not
// something an interruption makes; Check reports it, and repair leaves it.

// Problem is one inconsistency Check found.
type Problem struct {
	Path       string // relative to the store root
	What       string
	Repairable bool
	Repaired   bool
}

func (p Problem) String() string {
	state := "not repairable"
	switch {
	case p.Repaired:
		state = "repaired"
	case p.Repairable:
		state = "repairable"
	}
	return fmt.Sprintf("%s: %s (%s)", p.Path, p.What, state)
}

// Check looks for what interrupted commands leave in the store and, with
// repair, removes it. Layers whose chain IDs (hex) are in keep are in use
// by containers and never orphans. It waits for running imports, commits
// and removals (gc.lock exclusive) so it sees no work in progress.
func (s *Store) Check(keep map[string]bool, repair bool) ([]Problem, error) {
	gc, err := s.lock("gc.lock", lockEX)
	if err != nil {
		return nil, err
	}
	defer gc.unlock()
	lk, err := s.lock("index.lock", lockEX)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	c := &checker{s: s, keep: keep, repair: repair}
	if err := c.images(); err != nil {
		return nil, err
	}
	for _, step := range []func() error{c.layers, c.blobs, c.tmp, c.indexTemps} {
		if err := step(); err != nil {
			return c.problems, err
		}
	}
	return c.problems, nil
}

type checker struct {
	s          *Store
	keep       map[string]bool
	repair     bool
	usedBlobs  map[string]bool
	usedLayers map[string]bool
	problems   []Problem
}

// add records a problem, first running fix when repairing.
func (c *checker) add(path, what string, fix func() error) {
	p := Problem{Path: path, What: what, Repairable: fix != nil}
	if c.repair && fix != nil {
		if err := fix(); err != nil {
			p.What += fmt.Sprintf("; repair failed: %v", err)
		} else {
			p.Repaired = true
		}
	}
	c.problems = append(c.problems, p)
}

// images checks that every image's blobs and layers are there.
func (c *checker) images() error {
	idx, err := c.s.readIndex()
	if err != nil {
		return err
	}
	c.usedBlobs, c.usedLayers = map[string]bool{}, map[string]bool{}
	for _, rec := range idx.Images {
		who := "image " + rec.ID.Encoded()[:12]
		if len(rec.Names) > 0 {
			who += " (" + strings.Join(rec.Names, ", ") + ")"
		}
		for _, d := range []digest.Digest{rec.ID, rec.Manifest} {
			c.usedBlobs[d.Encoded()] = true
			c.needFile(filepath.Join("blobs", "sha256", d.Encoded()), who)
		}
		for _, l := range rec.Layers {
			c.usedBlobs[l.Digest.Encoded()] = true
			c.usedLayers[l.ChainID.Encoded()] = true
			c.needFile(filepath.Join("blobs", "sha256", l.Digest.Encoded()), who)
			c.needLayer(l.ChainID, who)
		}
	}
	return nil
}

func (c *checker) needFile(rel, who string) {
	if st, err := os.Lstat(filepath.Join(c.s.root, rel)); err != nil || !st.Mode().IsRegular() {
		c.add(rel, who+" needs it, but it is missing", nil)
	}
}

func (c *checker) needLayer(chain digest.Digest, who string) {
	rel := filepath.Join("layers", chain.Encoded())
	for _, part := range []string{"diff", "layer.json"} {
		if _, err := os.Lstat(filepath.Join(c.s.root, rel, part)); err != nil {
			c.add(filepath.Join(rel, part), who+" needs it, but it is missing", nil)
		}
	}
}

// layers finds layer dirs no image or container uses.
func (c *checker) layers() error {
	names, err := readDirNames(filepath.Join(c.s.root, "layers"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if c.usedLayers[n] || c.keep[n] {
			continue
		}
		n := n
		c.add(filepath.Join("layers", n), "orphan layer: no image or container uses it", func() error {
			trash := filepath.Join(c.s.tmpDir(), "gc-"+n)
			if err := os.Rename(filepath.Join(c.s.root, "layers", n), trash); err != nil {
				return err
			}
			return removeTree(trash)
		})
	}
	return nil
}

// blobs finds blobs no image uses.
func (c *checker) blobs() error {
	names, err := readDirNames(filepath.Join(c.s.root, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if c.usedBlobs[n] {
			continue
		}
		p := filepath.Join(c.s.root, "blobs", "sha256", n)
		c.add(filepath.Join("blobs", "sha256", n), "orphan blob: no image uses it", func() error { return os.RemoveAll(p) })
	}
	return nil
}

// tmp finds staging dirs and trash that no running process owns.
func (c *checker) tmp() error {
	names, err := readDirNames(c.s.tmpDir())
	if err != nil {
		return err
	}
	for _, n := range names {
		if parts := strings.SplitN(n, "-", 3); len(parts) == 3 {
			if pid, err := strconv.Atoi(parts[1]); err == nil && pid != os.Getpid() && unix.Kill(pid, 0) == nil {
				continue // a foreign tool's, or a pid reused: not ours to judge
			}
		}
		p := filepath.Join(c.s.tmpDir(), n)
		c.add(filepath.Join("tmp", n), "left by an interrupted import, commit or removal", func() error { return removeTree(p) })
	}
	return nil
}

// indexTemps finds temp files of an interrupted images.json write.
func (c *checker) indexTemps() error {
	names, err := readDirNames(c.s.root)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, ".tmp-images.json-") {
			continue
		}
		p := filepath.Join(c.s.root, n)
		c.add(n, "temp file of an interrupted image index write", func() error { return os.Remove(p) })
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}
