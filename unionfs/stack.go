package unionfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/metacopy"
)

// The read-only Stack API: a union's layers opened without a mount, looked
// at with the mount's own rules. inspect/ (diff, check) and Explain
// (explain.go) build on it.

// Stack is the layer list of a union, read straight from the layer dirs
// with the lookup rules of the mount (resolve), so what it says is what a
// mount of the same layers shows. It needs no mount and changes nothing.
type Stack struct {
	u    *unionFS
	root []int
}

// NewStack builds the layer list of cfg the way NewRoot does: the upper
// (if any) is layer 0 and the lowers follow, top first. Unlike NewRoot it
// neither validates writability nor creates the workdir: it only reads.
func NewStack(cfg Config) (*Stack, error) {
	if len(cfg.Lowers) == 0 && cfg.Upper == "" {
		return nil, errors.New("no layers: give at least one lower dir or an upper dir")
	}
	u := &unionFS{cfg: cfg}
	var paths []string
	if cfg.Upper != "" {
		u.rw = true
		paths = append(paths, cfg.Upper)
	}
	paths = append(paths, cfg.Lowers...)
	for i, p := range paths {
		real, err := realDir(p)
		if err != nil {
			return nil, err
		}
		paths[i] = real
	}
	if err := u.openLayers(paths); err != nil {
		return nil, err
	}
	if u.rw {
		// Described whatever the mount's metacopy option: a pointer the
		// writer of the upper could forge still shows as refused.
		u.metacopyTrusted = metacopy.Trusted(paths[0], true)
	}
	root, err := u.rootChain()
	if err != nil {
		return nil, err
	}
	return &Stack{u: u, root: root}, nil
}

// Close releases the layer descriptors NewStack opened.

// realDir returns the absolute, symlink-free path of the dir p.
func realDir(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty layer path")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: layer: %w", p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s: layer: %w", abs, unwrapPathError(err))
	}
	if st, err := os.Stat(real); err != nil {
		return "", fmt.Errorf("%s: layer: %w", real, unwrapPathError(err))
	} else if !st.IsDir() {
		return "", fmt.Errorf("%s: layer: %w", real, syscall.ENOTDIR)
	}
	return real, nil
}

// Dirs returns the layer dirs, top first; the upper (if any) is first.
func (s *Stack) Dirs() []string {
	out := make([]string, len(s.u.layers))
	for i, l := range s.u.layers {
		out[i] = l.path
	}
	return out
}

// HasUpper reports whether layer 0 is a writable upper.

// CleanPath turns a path in the union ("etc/hosts", "/etc/./hosts") into
// its components; ".." may not leave the root.
func CleanPath(p string) ([]string, error) {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return nil, fmt.Errorf("%s: \"..\" is not allowed in a path inside the union", p)
		}
	}
	clean := path.Clean("/" + p)
	if clean == "/" {
		return nil, nil
	}
	return strings.Split(clean[1:], "/"), nil
}

// InLowers reports whether path is visible in the layers under the upper,
// following the union's rules (an opaque upper dir hides everything below
// it): the test for "changed" versus "added", and for whether removing the
// path needs a whiteout. A path whose parent is not a dir of the union is
// not in the lowers.
func (s *Stack) InLowers(p string) (bool, error) {
	comps, err := CleanPath(p)
	if err != nil || len(comps) == 0 {
		return false, err
	}
	dirChain, rel := s.root, ""
	for _, name := range comps[:len(comps)-1] {
		f, err := s.u.resolve(dirChain, rel, name)
		if errors.Is(err, errNotFound) || err == nil && !f.isDir() {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("/%s: %w", joinRel(rel, name), err)
		}
		dirChain, rel = f.chain, joinRel(rel, name)
	}
	return s.u.existsBelow(dirChain, rel, comps[len(comps)-1])
}

// MetacopyInfo is what Stack.Metacopy found on an upper file.
type MetacopyInfo struct {
	Present bool   // the file carries a metacopy pointer
	Rel     string // its data's path in the lower layers; "" for a refused pointer
	Layer   int    // the layer holding the data, -1 when none does
}

// Metacopy reads the metacopy pointer of the file p of layer li and looks
// for its data in the layers below li, as the mount would (beneath the
// layer roots, no symlinks). Trust aside: the mount also needs metacopy on.
// For offline tools: p is taken as given.
func (s *Stack) Metacopy(li int, p string) MetacopyInfo {
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) != nil {
		return MetacopyInfo{Layer: -1}
	}
	ptr, err := metacopy.Read(p, st.Mode, st.Size)
	if err != nil {
		return MetacopyInfo{Layer: -1}
	}
	return s.locateData(li, ptr)
}

// locateData is Metacopy for the pointer ptr of a file of layer li.
func (s *Stack) locateData(li int, ptr metacopy.Pointer) MetacopyInfo {
	info := MetacopyInfo{Layer: -1}
	if !ptr.Present {
		return info
	}
	info.Present, info.Rel = true, ptr.Rel
	if ptr.Rel == "" {
		return info
	}
	var roots []int
	for lj := li + 1; lj < len(s.u.layers); lj++ {
		roots = append(roots, s.u.layers[lj].root)
	}
	fd, i, err := metacopy.Open(roots, ptr.Rel, unix.O_PATH)
	if err == nil {
		unix.Close(fd)
		info.Layer = li + 1 + i
	}
	return info
}
