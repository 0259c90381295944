package layers

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Two flock files guard the store; always taken in this order:
//
//   - gc.lock: every import and commit holds it shared for its whole run, so
//     a layer it found already present cannot be collected under it; rmi's
//     garbage collection holds it exclusive, and only then may it also clear
//     tmp/ of what crashed runs left.
//   - index.lock: exclusive for each read-modify-write of images.json and
//     while staged blobs and layers are renamed into place.
//
// flock locks die with the process, so a kill -9 never leaves the store locked.
type flock struct{ f *os.File }

func (s *Store) lock(name string, how int) (*flock, error) {
	path := filepath.Join(s.root, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &flock{f: f}, nil
}

func (l *flock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close() // closing drops the flock
		l.f = nil
	}
}

// lockShared takes gc.lock shared, first clearing stale staging dirs when
// nobody else holds the store (a non-blocking exclusive try).
func (s *Store) lockShared() (*flock, error) {
	if l, err := s.lock("gc.lock", unix.LOCK_EX|unix.LOCK_NB); err == nil {
		s.clearStaleTmp()
		l.unlock()
	}
	return s.lock("gc.lock", unix.LOCK_SH)
}

// newStaging makes a private staging dir under tmp/, named after our pid.
func (s *Store) newStaging(kind string) (string, error) {
	dir, err := os.MkdirTemp(s.tmpDir(), kind+"-"+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return "", fmt.Errorf("staging dir: %w", err)
	}
	return dir, nil
}

// clearStaleTmp removes staging dirs of processes that no longer run.
// Called with gc.lock held exclusive, when no import can be running, but it
// still checks the pid so a foreign tool holding the dir is not surprised.
func (s *Store) clearStaleTmp() {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) == 3 {
			if pid, err := strconv.Atoi(parts[1]); err == nil && pid != os.Getpid() && unix.Kill(pid, 0) == nil {
				continue
			}
		}
		removeTree(filepath.Join(s.tmpDir(), e.Name()))
	}
}

// removeTree deletes a tree even when extraction left read-only dirs in it.
func removeTree(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

const (
	lockEX = unix.LOCK_EX
	lockSH = unix.LOCK_SH
)
