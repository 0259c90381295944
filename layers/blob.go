package layers

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
)

// This file is the store's interface for code that moves images over the
// network (layers/registry): it fills a staging dir that Import then reads,
// and reads blobs back for a push.

// TempDir makes a private staging dir under the store's tmp/ for kind
// ("pull", "stdin"). It lives on the store's filesystem, so blobs can be
// hard-linked between it and the store. The caller removes it, and holds
// LockShared while it exists: an import that finds the store unlocked
// clears tmp/ of the dirs of dead processes and of its own process.
func (s *Store) TempDir(kind string) (string, error) { return s.newStaging(kind) }

// RemoveTempDir removes a dir made by TempDir.
func RemoveTempDir(dir string) error { return removeTree(dir) }

// LinkBlob hard-links the stored blob d to path and reports whether the
// store had it. The link keeps the content even if rmi collects the blob
// meanwhile.
func (s *Store) LinkBlob(d digest.Digest, path string) (bool, error) {
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return false, nil
	}
	err := os.Link(s.blobPath(d), path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("link blob %s: %w", d, err)
	}
	return true, nil
}

// OpenBlob opens a stored blob for reading.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", d, err)
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return f, nil
}

// LockShared holds the store's gc lock shared until the returned func is
// called, so rmi cannot collect blobs that a push is reading.
func (s *Store) LockShared() (unlock func(), err error) {
	l, err := s.lock("gc.lock", lockSH)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// Spool copies r (an archive read from a pipe) into a file in a new
// staging dir, since Import needs random access. The caller removes dir.
func (s *Store) Spool(r io.Reader, kind string) (dir, path string, err error) {
	dir, err = s.newStaging(kind)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "archive")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		removeTree(dir)
		return "", "", fmt.Errorf("read %s: %w", kind, err)
	}
	return dir, path, nil
}
