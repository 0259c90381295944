package testsupport

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/unionfsd/unionfsd/internal/xattr"
)

// Fingerprint describes everything under dir (dir included) that a test
// requires to stay as it was, such as a lower layer or a host dir an
// attacker aims at: for each entry its path, type and mode, size, mtime,
// owner and xattrs, and for a regular file a hash of its content; for a
// symlink its target. Nothing is followed.
func Fingerprint(t testing.TB, dir string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d %d.%09d %d:%d", p, fi.Mode(), fi.Size(), st.Mtim.Sec, st.Mtim.Nsec, st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			sum, err := hashFile(p)
			if err != nil {
				return err
			}
			line += " " + sum
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		names, err := xattr.List(p)
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, n := range names {
			v, err := xattr.Get(p, n)
			if err != nil {
				return fmt.Errorf("%s: xattr %s: %w", p, n, err)
			}
			line += fmt.Sprintf(" %s=%q", n, v)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("fingerprint %s: %v", dir, err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
