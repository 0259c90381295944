package unionfs

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/metacopy"
)

// explainCase is one path of the explain fixture and what explain must say.
type explainCase struct {
	path   string
	found  bool
	winner int
	chain  []int          // for dirs
	status map[int]Status // expected status per layer (only the ones listed)
	why    string         // substring of Explanation.Why
	marks  map[int]string // substring of a mark per layer
	inLow  bool           // InLowers
}

// explainFixture builds three layers (0 upper, 1 and 2 lowers) holding
// every rule the union applies.
func explainFixture(t *testing.T) *testUnion {
	tu := newLayers(t, 2)
	up, l1, l2 := tu.upper, tu.lowers[0], tu.lowers[1]
	writeFile(t, l2+"/f", "f from 2")
	writeFile(t, l1+"/s", "s from 1")
	writeFile(t, l2+"/s", "s from 2")
	writeFile(t, up+"/.wh.w", "")
	writeFile(t, l1+"/w", "w from 1")
	overlayWhiteout(t, mkParent(t, l1+"/c"))
	writeFile(t, l2+"/c", "c from 2")
	for i, l := range []string{up, l1, l2} {
		writeFile(t, l+"/d/from-layer"+string(rune('0'+i)), "")
		writeFile(t, l+"/x/from-layer"+string(rune('0'+i)), "")
	}
	writeFile(t, l1+"/d/"+".wh..wh..opq", "")
	writeFile(t, l2+"/d/under", "under from 2")
	if err := unix.Setxattr(l1+"/x", "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("trusted xattrs not supported on %s: %v", l1, err)
	}
	mkdirAll(t, up+"/m")
	writeFile(t, l1+"/m", "m file in 1")
	writeFile(t, up+"/n", "n file in 0")
	mkdirAll(t, l1+"/n")
	writeFile(t, l2+"/.wh.b", "")
	writeFile(t, up+"/st", "st from 0")
	writeFile(t, up+"/.wh.st", "")
	writeFile(t, l1+"/st", "st from 1")
	writeFile(t, up+"/.wh.wd", "")
	writeFile(t, l1+"/wd/inner", "inner")
	// Metacopy entries: the size of their data, an empty (sparse) body.
	writeFile(t, up+"/mc", "")
	must(t, os.Truncate(up+"/mc", 4))
	writeFile(t, l2+"/data/orig", "orig")
	must(t, unix.Setxattr(up+"/mc", metacopy.Xattr(), metacopy.Value("data/orig"), 0))
	writeFile(t, up+"/mg", "")
	must(t, os.Truncate(up+"/mg", 4))
	must(t, unix.Setxattr(up+"/mg", metacopy.Xattr(), metacopy.Value("gone/file"), 0))
	return tu
}

func mkParent(t *testing.T, p string) string {
	t.Helper()
	mkdirAll(t, filepath.Dir(p))
	return p
}

var explainCases = []explainCase{
	{path: "/f", found: true, winner: 2, inLow: true, status: map[int]Status{0: StatusAbsent, 1: StatusAbsent, 2: StatusWins}},
	{path: "/s", found: true, winner: 1, inLow: true, status: map[int]Status{1: StatusWins, 2: StatusShadowed}, why: "shadows layer 2"},
	{path: "/w", winner: -1, inLow: true, status: map[int]Status{0: StatusDeletes, 1: StatusHidden}, why: "deleted by the whiteout in layer 0"},
	{path: "/c", winner: -1, inLow: false, status: map[int]Status{1: StatusDeletes, 2: StatusHidden}, why: "whiteout in layer 1"},
	{path: "/d", found: true, winner: 0, chain: []int{0, 1}, inLow: true,
		status: map[int]Status{0: StatusWins, 1: StatusMerged, 2: StatusHidden}, why: "layer 1 is opaque", marks: map[int]string{1: "opaque (.wh..wh..opq)"}},
	{path: "/x", found: true, winner: 0, chain: []int{0, 1}, inLow: true,
		status: map[int]Status{1: StatusMerged, 2: StatusHidden}, marks: map[int]string{1: "overlay.opaque xattr"}},
	{path: "/m", found: true, winner: 0, chain: []int{0}, inLow: true, status: map[int]Status{0: StatusWins, 1: StatusShadowed}, why: "does not merge"},
	{path: "/n", found: true, winner: 0, inLow: true, status: map[int]Status{0: StatusWins, 1: StatusShadowed}},
	{path: "/b", winner: -1, status: map[int]Status{2: StatusAbsent}, why: "no layer has it"},
	{path: "/st", found: true, winner: 0, inLow: true, status: map[int]Status{0: StatusWins, 1: StatusShadowed}, marks: map[int]string{0: "stray .wh.st"}},
	{path: "/d/under", winner: -1, status: map[int]Status{2: StatusNotSeen}, why: "layer 2 has it, but the lookup does not reach"},
	{path: "/d/from-layer0", found: true, winner: 0, status: map[int]Status{0: StatusWins, 1: StatusAbsent, 2: StatusNotSeen}},
	{path: "/f/child", winner: -1, why: "parent /f is a file from layer 2"},
	{path: "/wd/inner", winner: -1, why: "parent /wd does not exist"},
	{path: "/mc", found: true, winner: 0, marks: map[int]string{0: "metacopy: data in layer 2"}},
	{path: "/mg", found: true, winner: 0, marks: map[int]string{0: "is gone (lower gone)"}},
	{path: "/", found: true, winner: 0, chain: []int{0, 1, 2}},
}

// TestExplainRules checks what explain says about each rule of the union.
func TestExplainRules(t *testing.T) {
	tu := explainFixture(t)
	s, err := NewStack(Config{Upper: tu.upper, Lowers: tu.lowers})
	must(t, err)
	for _, c := range explainCases {
		e, err := s.Explain(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		checkExplanation(t, c, e)
		if in, err := s.InLowers(c.path); err != nil || in != c.inLow {
			t.Errorf("%s: InLowers = %v, %v; want %v", c.path, in, err, c.inLow)
		}
	}
}

func checkExplanation(t *testing.T, c explainCase, e *Explanation) {
	t.Helper()
	if e.Found != c.found || e.Winner != c.winner {
		t.Errorf("%s: found %v winner %d, want %v %d (%s)", c.path, e.Found, e.Winner, c.found, c.winner, e.Why)
	}
	if c.chain != nil && !equalInts(e.Chain, c.chain) {
		t.Errorf("%s: chain %v, want %v", c.path, e.Chain, c.chain)
	}
	if len(e.Layers) != 3 {
		t.Fatalf("%s: %d layer rows, want 3", c.path, len(e.Layers))
	}
	for li, st := range c.status {
		if e.Layers[li].Status != st {
			t.Errorf("%s: layer %d status %q (%s), want %q", c.path, li, e.Layers[li].Status, e.Layers[li].Why, st)
		}
	}
	for li, m := range c.marks {
		if !strings.Contains(strings.Join(e.Layers[li].Marks, "|"), m) {
			t.Errorf("%s: layer %d marks %q, want one containing %q", c.path, li, e.Layers[li].Marks, m)
		}
	}
	if !strings.Contains(e.Why, c.why) {
		t.Errorf("%s: why %q, want it to contain %q", c.path, e.Why, c.why)
	}
	checkAgreesWithResolve(t, e)
}

// checkAgreesWithResolve holds the per-layer statuses (classify) to the
// answer resolve gave: the winner wins, exactly the chain merges.
func checkAgreesWithResolve(t *testing.T, e *Explanation) {
	t.Helper()
	var answering []int
	for _, ls := range e.Layers {
		if ls.Status == StatusWins || ls.Status == StatusMerged {
			answering = append(answering, ls.Layer)
		}
	}
	want := e.Chain
	if e.Found && e.Type != "dir" {
		want = []int{e.Winner}
	}
	if !equalInts(answering, want) {
		t.Errorf("%s: layers marked wins/merged %v, resolve's answer %v", e.Path, answering, want)
	}
}

// TestExplainAgreesWithMount holds explain to what the mount shows: the
// path exists iff explain found it, with the winner's type and content, and
// a dir lists the marker files of exactly the layers of its chain.
func TestExplainAgreesWithMount(t *testing.T) {
	tu := explainFixture(t)
	tu.mount(t, func(c *Config) { c.Metacopy = true })
	s, err := NewStack(Config{Upper: tu.upper, Lowers: tu.lowers})
	must(t, err)
	for _, c := range explainCases {
		e, err := s.Explain(c.path)
		must(t, err)
		var st syscall.Stat_t
		err = syscall.Lstat(tu.m(c.path), &st)
		if (err == nil) != e.Found {
			t.Errorf("%s: explain found=%v, mount says %v", c.path, e.Found, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("%s: %v", c.path, err)
			}
			continue
		}
		if typeName(st.Mode) != e.Type {
			t.Errorf("%s: explain type %s, mount shows %s", c.path, e.Type, typeName(st.Mode))
		}
		switch c.path {
		case "/mc": // a metacopy entry reads its lower data
			if got, err := os.ReadFile(tu.m(c.path)); err != nil || string(got) != "orig" {
				t.Errorf("%s: mount reads %q (%v), want the data of layer 2", c.path, got, err)
			}
		case "/mg": // whose data is gone: EIO, as on overlay
			if _, err := os.ReadFile(tu.m(c.path)); !errors.Is(err, syscall.EIO) {
				t.Errorf("%s: read gives %v, want EIO", c.path, err)
			}
		default:
			checkWinnerContent(t, tu, c.path, e)
		}
	}
}

func checkWinnerContent(t *testing.T, tu *testUnion, p string, e *Explanation) {
	t.Helper()
	if e.Type == "file" {
		got, err1 := os.ReadFile(tu.m(p))
		want, err2 := os.ReadFile(e.Layers[e.Winner].Path)
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s: mount reads %q (%v), winner layer %d holds %q (%v)", p, got, err1, e.Winner, want, err2)
		}
		return
	}
	if e.Type != "dir" {
		return
	}
	ents, err := os.ReadDir(tu.m(p))
	must(t, err)
	var got, want []string
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), "from-layer") {
			got = append(got, d.Name())
		}
	}
	for _, li := range e.Chain {
		if _, err := os.Lstat(filepath.Join(e.Layers[li].Path, "from-layer"+string(rune('0'+li)))); err == nil {
			want = append(want, "from-layer"+string(rune('0'+li)))
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: mount lists %v, explain's chain %v gives %v", p, got, e.Chain, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExplainReadOnlyUnion: without an upper, layer 0 is the top lower.
func TestExplainReadOnlyUnion(t *testing.T) {
	tu := newLayers(t, 2)
	writeFile(t, tu.lowers[0]+"/a", "top")
	writeFile(t, tu.lowers[1]+"/a", "bottom")
	e, err := Explain(Config{Lowers: tu.lowers}, "a")
	must(t, err)
	if !e.Found || e.Winner != 0 || e.Layers[0].Upper || e.Layers[1].Status != StatusShadowed {
		t.Errorf("read-only union: %+v", e)
	}
}

// TestExplainBadInput: bad paths and layers get one clear error.
func TestExplainBadInput(t *testing.T) {
	tu := newLayers(t, 1)
	if _, err := Explain(Config{Lowers: tu.lowers}, "../etc"); err == nil || !strings.Contains(err.Error(), `".."`) {
		t.Errorf("explain ../etc: %v", err)
	}
	missing := filepath.Join(tu.upper, "nope")
	if _, err := Explain(Config{Lowers: []string{missing}}, "a"); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing layer: %v", err)
	}
	if _, err := Explain(Config{}, "a"); err == nil {
		t.Error("no layers: no error")
	}
	if _, err := os.Stat(tu.upper + "/" + DefaultWorkName); err == nil {
		t.Error("explain created a workdir")
	}
}
