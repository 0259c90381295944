package testsupport

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
)

// ListTree returns one line for every entry under dir, sorted, the way
// tests compare trees: "rel/" for a directory, "rel -> target" for a
// symlink, "rel = content" for a regular file ("<EIO>" for one whose data
// is gone, as a metacopy entry without its lower file), "rel c" (the type
// letter) for anything else.
func ListTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if errors.Is(err, syscall.EIO) {
				b = []byte("<EIO>")
			} else if err != nil {
				return err
			}
			out = append(out, rel+" = "+string(b))
		default:
			out = append(out, rel+" "+fi.Mode().Type().String()[:1])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}
