package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// chownID is the owner chown -R gives the tree (nobody has it in the data
// set, so an entry left out shows).
const chownID = 4242

// chownR times chown -R of the lower tree plus a sync (the copy-up's data
// has to reach the disk too), then measures the upper dir (issue 6): the
// sample's value is the time, its extras the share of the tree's data
// bytes that landed in the upper, allocated (du -sB1) and apparent
// (du -sb).
func (e *env) chownR(in *instance) (float64, error) {
	dir := filepath.Join(in.root, chownDir)
	owner := strconv.Itoa(chownID) + ":" + strconv.Itoa(chownID)
	unix.Sync()
	sec, err := timed(func() error {
		if b, err := e.command("chown", "-R", owner, dir).CombinedOutput(); err != nil {
			return fmt.Errorf("chown -R %s %s: %v: %s", owner, dir, err, oneLine(string(b)))
		}
		unix.Sync()
		return nil
	})
	if err != nil {
		return sec, err
	}
	u, err := duUpper(in.upper)
	if err != nil {
		return sec, err
	}
	data := float64(e.ds.Scale.ChownBytes)
	in.extra = map[string]float64{"chown-R-upper": 100 * float64(u.data) / data,
		"chown-R-upper-du": 100 * float64(u.alloc) / data, "chown-R-upper-apparent": 100 * float64(u.apparent) / data}
	return sec, e.checkChowned(in)
}

type upperUse struct {
	data     int64 // file data extents (SEEK_DATA/SEEK_HOLE): data copied up
	alloc    int64 // blocks, as du -sB1 (also dirs and ext4 xattr blocks)
	apparent int64 // sizes, as du -sb (a metacopy file keeps its size)
}

// duUpper measures the upper, counting hard links once. The data row is
// the "data bytes that land in the upper": on ext4 every metacopy
// file gets a 4 KiB xattr block, which du counts but holds no data.
func duUpper(upper string) (u upperUse, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.alloc += st.Blocks * 512
		u.apparent += st.Size
		if d.Type().IsRegular() {
			n, err := dataBytes(p, st.Size)
			u.data += n
			return err
		}
		return nil
	})
	return u, err
}

// dataBytes sums the data extents of a file (holes excluded).
func dataBytes(p string, size int64) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd := int(f.Fd())
	var n, off int64
	for off < size {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole from off to the end
		}
		if err != nil {
			return n, fmt.Errorf("seek data %s: %w", p, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return n, fmt.Errorf("seek hole %s: %w", p, err)
		}
		n += end - start
		off = end
	}
	return n, nil
}

// checkChowned checks through the mount that every entry of the tree has
// the new owner, every file its lower size, and a sample of files their
// lower content.
func (e *env) checkChowned(in *instance) error {
	s := e.ds.Scale
	root := filepath.Join(in.root, chownDir)
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != chownID || sys.Gid != chownID {
			return checkf("%s owned by %d:%d after chown -R, want %d:%d", p, sys.Uid, sys.Gid, chownID, chownID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if want := chownEntries(s); n != want {
		return checkf("%s has %d entries after chown -R, want %d", root, n, want)
	}
	step := s.ChownFiles / 50
	if step < 1 {
		step = 1
	}
	for i := 0; i < s.ChownFiles; i += step {
		if err := sameFile(filepath.Join(in.root, chownPath(i)), filepath.Join(e.ds.Bottom, chownPath(i)), chownFileSize(s, i)); err != nil {
			return err
		}
	}
	return nil
}

// sameFile checks that merged has size bytes, the same as lower.
func sameFile(merged, lower string, size int64) error {
	a, na, err := hashFile(merged)
	if err != nil {
		return err
	}
	b, _, err := hashFile(lower)
	if err != nil {
		return err
	}
	if na != size || !bytes.Equal(a, b) {
		return checkf("%s: %d bytes, content differs from the lower file's (want %d bytes, same content)", merged, na, size)
	}
	return nil
}

func hashFile(p string) ([]byte, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, n, fmt.Errorf("read %s: %w", p, err)
	}
	return h.Sum(nil), n, nil
}
