package unionfs

// Explain: how a path resolves through the layers of a union, layer by
// layer, in words (unionfsd explain). It reads through a Stack (stack.go).

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/metacopy"
	"github.com/unionfsd/unionfsd/internal/units"
	"github.com/unionfsd/unionfsd/whiteout"
)

func (s *Stack) Close() error { return s.u.close() }

func (s *Stack) HasUpper() bool { return s.u.rw }

// Status says what one layer contributes to a path.
type Status string

const (
	StatusWins     Status = "wins"      // this layer answers for the path
	StatusMerged   Status = "merged"    // a dir merged into the winning dir
	StatusDeletes  Status = "whiteout"  // a whiteout here deletes the name for the layers below
	StatusShadowed Status = "shadowed"  // has the name, but a layer above answers
	StatusHidden   Status = "hidden"    // has the name, but a whiteout or opaque dir above hides it
	StatusAbsent   Status = "absent"    // searched, not there
	StatusNotSeen  Status = "unreached" // not searched: the parent dir does not come from this layer
)

// LayerState is what one layer holds at a path and what that means.
type LayerState struct {
	Layer  int      `json:"layer"`
	Dir    string   `json:"dir"`
	Upper  bool     `json:"upper,omitempty"`
	Path   string   `json:"path"`            // the path in this layer
	Entry  string   `json:"entry"`           // "file, 12 B", "dir", "symlink -> x", "whiteout (char 0/0)", "absent"
	Marks  []string `json:"marks,omitempty"` // opaque, metacopy, a stray .wh. beside the entry
	Status Status   `json:"status"`
	Why    string   `json:"why"`
}

// Explanation is the stack of one path through every layer of a union.
type Explanation struct {
	Path   string       `json:"path"`
	Layers []LayerState `json:"layers"`
	Found  bool         `json:"found"`
	Winner int          `json:"winner"`          // layer that answers, -1 for none
	Chain  []int        `json:"chain,omitempty"` // merged layers of a dir, top first
	Type   string       `json:"type,omitempty"`  // file, dir, symlink, ... of the answer
	// InLowers: the name is visible in the layers under the upper, so the
	// upper's copy changes (rather than adds) it, and removing it needs a
	// whiteout.
	InLowers bool   `json:"inLowers"`
	Why      string `json:"why"`
}

// Explain builds the layers of cfg and explains path (relative to the
// union's root) in them.
func Explain(cfg Config, path string) (*Explanation, error) {
	s, err := NewStack(cfg)
	if err != nil {
		return nil, err
	}
	return s.Explain(path)
}

// Explain walks path component by component exactly as lookups through the
// mount do and describes every layer at the last component.
func (s *Stack) Explain(p string) (*Explanation, error) {
	comps, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	e := &Explanation{Path: "/" + strings.Join(comps, "/"), Winner: -1}
	if len(comps) == 0 {
		return s.explainRoot(e)
	}
	dirChain, rel := s.root, ""
	unreached := s.unreachedByRoot()
	for i, name := range comps[:len(comps)-1] {
		f, err := s.u.resolve(dirChain, rel, name)
		if err != nil || !f.isDir() {
			return s.parentFails(e, comps[:i+1], f, err)
		}
		st, err := s.classify(dirChain, rel, name)
		if err != nil {
			return nil, err
		}
		rel = joinRel(rel, name)
		for _, li := range dirChain {
			if !contains(f.chain, li) {
				unreached[li] = fmt.Sprintf("parent /%s: %s", rel, describeDrop(st[li]))
			}
		}
		dirChain = f.chain
	}
	return s.explainLast(e, dirChain, rel, comps[len(comps)-1], unreached)
}

// unreachedByRoot gives the layers below an opaque root dir their reason.
func (s *Stack) unreachedByRoot() map[int]string {
	out := map[int]string{}
	bottom := s.root[len(s.root)-1]
	for li := bottom + 1; li < len(s.u.layers); li++ {
		out[li] = fmt.Sprintf("the root dir of layer %d is opaque", bottom)
	}
	return out
}

// describeDrop says why a layer left the merge chain of a parent dir.
func describeDrop(st LayerState) string {
	switch st.Status {
	case StatusAbsent:
		return "not in this layer"
	case StatusDeletes:
		return "deleted in this layer (" + st.Entry + ")"
	}
	return st.Why
}

// parentFails explains a path whose parent is missing or not a dir.
func (s *Stack) parentFails(e *Explanation, parent []string, f *found, err error) (*Explanation, error) {
	pp := "/" + strings.Join(parent, "/")
	switch {
	case errors.Is(err, errNotFound):
		e.Why = fmt.Sprintf("not found: parent %s does not exist in the union (explain %s for why)", pp, pp)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", pp, err)
	default:
		e.Why = fmt.Sprintf("not found: parent %s is a %s from layer %d, not a dir", pp, typeName(f.st.Mode), f.chain[0])
	}
	rel := strings.TrimPrefix(e.Path, "/")
	for li := range s.u.layers {
		ls := s.layerState(li, rel)
		ls.Status, ls.Why = StatusNotSeen, "the parent dir is not a dir of the union"
		e.Layers = append(e.Layers, ls)
	}
	return e, nil
}

// explainRoot describes the root dir: every layer's root merges down to the
// first opaque one.
func (s *Stack) explainRoot(e *Explanation) (*Explanation, error) {
	e.Found, e.Winner, e.Chain, e.Type = true, 0, s.root, "dir"
	for li := range s.u.layers {
		ls := s.layerState(li, "")
		switch {
		case li == 0:
			ls.Status, ls.Why = StatusWins, "the top layer's root gives the root's attributes"
		case contains(s.root, li):
			ls.Status, ls.Why = StatusMerged, "root dirs always merge"
		default:
			ls.Status, ls.Why = StatusHidden, fmt.Sprintf("below the opaque root of layer %d", s.root[len(s.root)-1])
		}
		e.Layers = append(e.Layers, ls)
	}
	e.Why = mergeWhy(e.Chain, "")
	return e, nil
}

// explainLast describes the final component name in dir rel (chain dirChain).
func (s *Stack) explainLast(e *Explanation, dirChain []int, rel, name string, unreached map[int]string) (*Explanation, error) {
	st, err := s.classify(dirChain, rel, name)
	if err != nil {
		return nil, err
	}
	full := joinRel(rel, name)
	for li := range s.u.layers {
		ls, ok := st[li]
		if !ok {
			ls = s.layerState(li, full)
			ls.Status, ls.Why = StatusNotSeen, unreached[li]
		}
		e.Layers = append(e.Layers, ls)
	}
	f, err := s.u.resolve(dirChain, rel, name)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	if err == nil {
		e.Found, e.Winner, e.Type = true, f.chain[0], typeName(f.st.Mode)
		if f.isDir() {
			e.Chain = f.chain
		}
	}
	if e.InLowers, err = s.u.existsBelow(dirChain, rel, name); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	e.Why = s.why(e)
	return e, nil
}

// classify applies resolve's rules to every layer of dirChain and records
// each layer's part. It must agree with resolve; the tests hold it to that.
func (s *Stack) classify(dirChain []int, rel, name string) (map[int]LayerState, error) {
	out := map[int]LayerState{}
	full := joinRel(rel, name)
	var stop struct { // set once the layers below no longer count
		status Status
		why    string
	}
	top := -1 // the layer answering so far
	for i, li := range dirChain {
		last := i == len(dirChain)-1
		ls := s.layerState(li, full)
		kind, err := s.kindAt(li, full)
		if err != nil {
			return nil, err
		}
		switch {
		case stop.why != "":
			ls.Status, ls.Why = StatusAbsent, "not there"
			if kind != kindAbsent {
				ls.Status, ls.Why = stop.status, stop.why
			}
		case kind == kindCharWhiteout:
			ls.Status, ls.Why = StatusDeletes, "a char 0/0 whiteout (kernel overlay format) deletes the name for the layers below"
			stop.status, stop.why = StatusHidden, fmt.Sprintf("deleted by the whiteout in layer %d", li)
		case kind == kindOther && top >= 0:
			ls.Status, ls.Why = StatusShadowed, fmt.Sprintf("shadowed by the dir in layer %d (only dirs merge)", top)
			stop.status, stop.why = ls.Status, ls.Why
		case kind == kindOther:
			ls.Status, ls.Why, top = StatusWins, "the topmost layer that has the name", li
			stop.status, stop.why = StatusShadowed, fmt.Sprintf("shadowed by layer %d", li)
		case kind == kindDir:
			ls.Status, ls.Why = StatusMerged, fmt.Sprintf("dir merged into layer %d's", top)
			if top < 0 {
				ls.Status, ls.Why, top = StatusWins, "the topmost layer that has the name", li
			}
			if !last && s.isOpaque(li, full) {
				ls.Why += "; opaque: the layers below do not merge"
				stop.status, stop.why = StatusHidden, fmt.Sprintf("below the opaque dir in layer %d", li)
			}
		case !last && s.whiteoutAt(li, rel, name):
			ls.Status, ls.Why = StatusDeletes, whiteout.Name(name)+" deletes the name for the layers below"
			stop.status, stop.why = StatusHidden, fmt.Sprintf("deleted by %s in layer %d", whiteout.Name(name), li)
		case s.whiteoutAt(li, rel, name):
			ls.Status, ls.Why = StatusAbsent, whiteout.Name(name)+" here hides nothing: no layer below"
		default:
			ls.Status, ls.Why = StatusAbsent, "not there"
		}
		out[li] = ls
	}
	return out, nil
}

// entryKind is what a layer holds at a path, as far as resolve cares.
type entryKind int

const (
	kindAbsent entryKind = iota
	kindCharWhiteout
	kindDir
	kindOther
)

func (s *Stack) kindAt(li int, rel string) (entryKind, error) {
	var st syscall.Stat_t
	err := s.u.lstat(li, rel, &st)
	switch {
	case isMissing(err):
		return kindAbsent, nil
	case err != nil:
		return 0, fmt.Errorf("%s: %w", s.u.layerPath(li, rel), err)
	case whiteout.IsOverlayWhiteoutMode(st.Mode, st.Rdev):
		return kindCharWhiteout, nil
	case st.Mode&syscall.S_IFMT == syscall.S_IFDIR:
		return kindDir, nil
	}
	return kindOther, nil
}

func (s *Stack) whiteoutAt(li int, rel, name string) bool {
	ok, err := s.u.hasWhiteout(li, rel, name)
	return ok && err == nil
}

func (s *Stack) isOpaque(li int, rel string) bool {
	fd, err := s.u.openDir(li, rel)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	ok, err := isOpaqueFd(fd)
	return ok && err == nil
}

// layerState describes what layer li holds at rel, without judging it.
func (s *Stack) layerState(li int, rel string) LayerState {
	p := s.u.layerPath(li, rel)
	ls := LayerState{Layer: li, Dir: s.u.layers[li].path, Upper: s.u.rw && li == upperLayer, Path: p}
	var st syscall.Stat_t
	fd, err := s.u.openObj(li, rel)
	if err == nil {
		defer unix.Close(fd)
		err = syscall.Fstat(fd, &st)
	}
	if err != nil {
		ls.Entry = "absent"
		if dir, name := parentRel(rel), path.Base("/"+rel); rel != "" && s.whiteoutAt(li, dir, name) {
			ls.Entry = "whiteout " + whiteout.Name(name)
		}
		return ls
	}
	ls.Entry = describeEntry(fd, &st)
	ls.Marks = s.marks(li, rel, fd, &st)
	return ls
}

// marks lists what else matters about an existing entry.
func (s *Stack) marks(li int, rel string, fd int, st *syscall.Stat_t) []string {
	var out []string
	if rel != "" && s.whiteoutAt(li, parentRel(rel), path.Base(rel)) {
		out = append(out, fmt.Sprintf("stray %s beside it (ignored: the entry wins; unionfsd check removes it)",
			whiteout.Name(path.Base(rel))))
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		var m syscall.Stat_t
		if lstatAt(fd, whiteout.OpaqueName, &m) == nil {
			out = append(out, "opaque ("+whiteout.OpaqueName+")")
		}
		if ok, _ := isOpaqueFd(fd); ok && lstatAt(fd, whiteout.OpaqueName, &m) != nil {
			out = append(out, "opaque (overlay.opaque xattr)")
		}
	}
	if m := s.metacopyMark(li, fd); m != "" {
		out = append(out, m)
	}
	return out
}

// metacopyMark describes a metadata-only copy on the file open as fd in
// layer li: where its data is, and whether that file is still there.
func (s *Stack) metacopyMark(li int, fd int) string {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return ""
	}
	ptr, err := metacopy.ReadFd(fd, st.Mode, st.Size)
	if err != nil {
		return ""
	}
	m := s.locateData(li, ptr)
	switch {
	case !m.Present:
		return ""
	case m.Rel == "":
		return "metacopy: pointer refused (not in " + metacopy.Xattr() + ", or malformed): reads fail with EPERM"
	case m.Layer < 0:
		return fmt.Sprintf("metacopy: data /%s is gone (lower gone)", m.Rel)
	}
	return fmt.Sprintf("metacopy: data in layer %d (/%s)", m.Layer, m.Rel)
}

// describeEntry names the object open as fd: "file, 12 B", "symlink -> x", ...
func describeEntry(fd int, st *syscall.Stat_t) string {
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file, " + units.Bytes(st.Size)
	case syscall.S_IFLNK:
		target, _ := readlinkFd(fd)
		return "symlink -> " + string(target)
	case syscall.S_IFCHR:
		if whiteout.IsOverlayWhiteoutMode(st.Mode, st.Rdev) {
			return "whiteout (char 0/0)"
		}
		return fmt.Sprintf("char device %d/%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case syscall.S_IFBLK:
		return fmt.Sprintf("block device %d/%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return typeName(st.Mode)
}

// typeName names a file type.
func typeName(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "dir"
	case syscall.S_IFLNK:
		return "symlink"
	case syscall.S_IFCHR:
		return "char device"
	case syscall.S_IFBLK:
		return "block device"
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFSOCK:
		return "socket"
	}
	return "unknown type"
}

// why sums the explanation up in one sentence.
func (s *Stack) why(e *Explanation) string {
	if !e.Found {
		for _, ls := range e.Layers {
			if ls.Status == StatusDeletes {
				return fmt.Sprintf("not found: deleted by the whiteout in layer %d", ls.Layer)
			}
		}
		for _, ls := range e.Layers {
			if ls.Status == StatusNotSeen && ls.Entry != "absent" {
				return fmt.Sprintf("not found: layer %d has it, but the lookup does not reach that layer (%s)", ls.Layer, ls.Why)
			}
		}
		return "not found: no layer has it"
	}
	if e.Type == "dir" {
		return mergeWhy(e.Chain, s.stopNote(e))
	}
	w := fmt.Sprintf("%s from layer %d, the topmost layer that has it", e.Type, e.Winner)
	var shadowed []string
	for _, ls := range e.Layers {
		if ls.Status == StatusShadowed || ls.Status == StatusHidden {
			shadowed = append(shadowed, fmt.Sprint(ls.Layer))
		}
	}
	if len(shadowed) > 0 {
		w += "; it shadows layer " + strings.Join(shadowed, ", ")
	}
	return w
}

// stopNote says why a dir's merge ended above the bottom layer: the first
// layer below the chain that has something at the path tells.
func (s *Stack) stopNote(e *Explanation) string {
	lastLi := e.Chain[len(e.Chain)-1]
	if strings.Contains(e.Layers[lastLi].Why, "opaque") {
		return fmt.Sprintf("layer %d is opaque", lastLi)
	}
	for _, ls := range e.Layers[lastLi+1:] {
		switch ls.Status {
		case StatusDeletes:
			return fmt.Sprintf("layer %d deletes it below", ls.Layer)
		case StatusShadowed:
			return fmt.Sprintf("layer %d has a %s, which does not merge", ls.Layer, strings.SplitN(ls.Entry, ",", 2)[0])
		}
	}
	return ""
}

// mergeWhy describes a dir's merge chain.
func mergeWhy(chain []int, stop string) string {
	if len(chain) == 1 {
		w := fmt.Sprintf("dir from layer %d only", chain[0])
		if stop != "" {
			w += " (" + stop + ")"
		}
		return w
	}
	var ls []string
	for _, li := range chain {
		ls = append(ls, fmt.Sprint(li))
	}
	w := fmt.Sprintf("dir merged from layers %s; attributes from layer %d", strings.Join(ls, ", "), chain[0])
	if stop != "" {
		w += " (" + stop + ")"
	}
	return w
}

func contains(list []int, x int) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}
