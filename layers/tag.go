package layers

import (
	digest "github.com/opencontainers/go-digest"
)

// Tag gives the image ref names the name NAME[:TAG] too, taking the name
// from whichever image had it (as docker tag does).
func (s *Store) Tag(ref, name string) (*Image, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return nil, err
	}
	return s.updateRecord(ref, func(idx *index, rec *imageRecord) {
		idx.untag(n, rec)
		if !contains(rec.Names, n) {
			rec.Names = append(rec.Names, n)
		}
	})
}

// AddRepoDigest records that image id was pulled as repoDigest
// (REPO@sha256:HEX), so that reference finds it later.
func (s *Store) AddRepoDigest(id digest.Digest, repoDigest string) error {
	_, err := s.updateRecord(id.String(), func(_ *index, rec *imageRecord) {
		if !contains(rec.RepoDigests, repoDigest) {
			rec.RepoDigests = append(rec.RepoDigests, repoDigest)
		}
	})
	return err
}

// updateRecord changes the record ref finds under the index lock.
func (s *Store) updateRecord(ref string, change func(*index, *imageRecord)) (*Image, error) {
	lk, err := s.lock("index.lock", lockEX)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	rec, err := idx.find(ref)
	if err != nil {
		return nil, err
	}
	change(idx, rec)
	if err := s.writeIndex(idx); err != nil {
		return nil, err
	}
	return s.loadImage(rec)
}
