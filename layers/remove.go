package layers

import (
	"fmt"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
)

// RemoveResult tells what Remove did.
type RemoveResult struct {
	Untagged      []string
	Deleted       digest.Digest   // image ID, "" when only a name was removed
	DeletedLayers []digest.Digest // chain IDs
	DeletedBlobs  int
}

// Lines is the report rmi prints: one line per untagged name, deleted image
// and deleted layer.
func (r *RemoveResult) Lines() []string {
	var out []string
	for _, n := range r.Untagged {
		out = append(out, "Untagged: "+n)
	}
	if r.Deleted != "" {
		out = append(out, "Deleted: "+r.Deleted.String())
	}
	for _, l := range r.DeletedLayers {
		out = append(out, "Deleted layer: "+l.String())
	}
	return out
}

// Remove removes a name, or a whole image when ref is an ID or the image's
// last name, then deletes the layers and blobs no remaining image uses.
func (s *Store) Remove(ref string) (*RemoveResult, error) { return s.RemoveKeeping(ref, nil) }

// RemoveKeeping is Remove that never deletes the layers whose chain IDs
// (hex) are in keep: containers use them as their lower layers, whatever
// happens to the image they came from.
func (s *Store) RemoveKeeping(ref string, keep map[string]bool) (*RemoveResult, error) {
	gc, err := s.lock("gc.lock", lockEX)
	if err != nil {
		return nil, err
	}
	defer gc.unlock()
	res, err := s.removeRecord(ref)
	if err != nil {
		return nil, err
	}
	if err := s.collect(res, keep); err != nil {
		return res, err
	}
	s.clearStaleTmp()
	return res, nil
}

// removeRecord updates images.json.
func (s *Store) removeRecord(ref string) (*RemoveResult, error) {
	lk, err := s.lock("index.lock", lockEX)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	idx, rec, err := s.findRecord(ref)
	if err != nil {
		return nil, err
	}
	res := &RemoveResult{}
	name, nameErr := NormalizeName(ref)
	byName := nameErr == nil && idx.byName(name) == rec
	if byName && len(rec.Names) > 1 {
		name = matchingName(rec, name)
		idx.untag(name, nil)
		res.Untagged = []string{name}
		return res, s.writeIndex(idx)
	}
	res.Untagged = rec.Names
	res.Deleted = rec.ID
	out := idx.Images[:0]
	for _, r := range idx.Images {
		if r != rec {
			out = append(out, r)
		}
	}
	idx.Images = out
	return res, s.writeIndex(idx)
}

// matchingName returns the name of rec that name refers to (exactly or familiarly).
func matchingName(rec *imageRecord, name string) string {
	if contains(rec.Names, name) {
		return name
	}
	for _, n := range rec.Names {
		if familiarName(n) == familiarName(name) {
			return n
		}
	}
	return name
}

// collect deletes layers and blobs that no image references, except the
// layers in keep. Called with gc.lock exclusive, so no import is between
// staging and publishing.
func (s *Store) collect(res *RemoveResult, keep map[string]bool) error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	usedBlobs := map[string]bool{}
	usedLayers := map[string]bool{}
	for _, rec := range idx.Images {
		usedBlobs[rec.ID.Encoded()] = true
		usedBlobs[rec.Manifest.Encoded()] = true
		for _, l := range rec.Layers {
			usedBlobs[l.Digest.Encoded()] = true
			usedLayers[l.ChainID.Encoded()] = true
		}
	}
	layerDir := filepath.Join(s.root, "layers")
	ents, err := os.ReadDir(layerDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if usedLayers[e.Name()] || keep[e.Name()] {
			continue
		}
		// Rename first so the layer disappears at once, then delete at leisure.
		trash := filepath.Join(s.tmpDir(), "gc-"+e.Name())
		if err := os.Rename(filepath.Join(layerDir, e.Name()), trash); err != nil {
			return fmt.Errorf("remove layer %s: %w", e.Name(), err)
		}
		if err := removeTree(trash); err != nil {
			return fmt.Errorf("remove layer %s: %w", e.Name(), err)
		}
		res.DeletedLayers = append(res.DeletedLayers, digest.NewDigestFromEncoded(digest.SHA256, e.Name()))
	}
	blobDir := filepath.Join(s.root, "blobs", "sha256")
	blobs, err := os.ReadDir(blobDir)
	if err != nil {
		return err
	}
	for _, e := range blobs {
		if usedBlobs[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(blobDir, e.Name())); err != nil {
			return fmt.Errorf("remove blob %s: %w", e.Name(), err)
		}
		res.DeletedBlobs++
	}
	return nil
}

// Removal is what removing a set of references at once does to one image.
type Removal struct {
	ID      digest.Digest
	Refs    []string // the arguments that name it
	Deleted bool     // the image goes: a ref is its ID, or all its names go
}

// PlanRemoval resolves every reference first and tells, per image, whether
// removing them all deletes it: "rmi a:1 b:1" of an image named only a:1
// and b:1 deletes it although each name alone would only untag.
func (s *Store) PlanRemoval(refs []string) ([]*Removal, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	byID := map[digest.Digest]*Removal{}
	var out []*Removal
	gone := map[digest.Digest]map[string]bool{} // names each image loses
	for _, ref := range refs {
		rec, err := idx.find(ref)
		if err != nil {
			return nil, err
		}
		r := byID[rec.ID]
		if r == nil {
			r = &Removal{ID: rec.ID}
			byID[rec.ID], gone[rec.ID] = r, map[string]bool{}
			out = append(out, r)
		}
		r.Refs = append(r.Refs, ref)
		name, nameErr := NormalizeName(ref)
		if nameErr != nil || idx.byName(name) != rec {
			r.Deleted = true // by ID
			continue
		}
		gone[rec.ID][matchingName(rec, name)] = true
		if len(gone[rec.ID]) >= len(rec.Names) {
			r.Deleted = true
		}
	}
	return out, nil
}
