package difftest

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/unionfs"
)

var (
	flagOps      = flag.Int("difftest.ops", 2000, "random ops per seed")
	flagSeed     = flag.Uint64("difftest.seed", 0, "run only this seed (0: the default seeds)")
	flagEvery    = flag.Int("difftest.every", 10, "compare the merged trees after every N ops (and at the end)")
	flagMinimize = flag.Duration("difftest.minimize", 60*time.Second, "time to spend shrinking divergent op sequences, shared by all tests of the run (0: off)")
	flagStrict   = flag.Bool("difftest.strictupper", false, "count whiteouts and opaque markers that hide nothing as divergences")
	flagCand     = flag.String("difftest.cand", "unionfsd", "union under test: unionfsd, or overlay to check the harness against itself")
)

// defaultSeeds keep the default run at a few thousand ops.
var defaultSeeds = []uint64{1, 2}

func seeds() []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	return defaultSeeds
}

func options() Options {
	return Options{TreeEvery: *flagEvery, StrictUpper: *flagStrict}
}

// minimizeUsed is how much of -difftest.minimize the run has spent.
var minimizeUsed time.Duration

// check is Check with the minimization time taken from the run's budget.
func check(t *testing.T, s Setup, ops []Op, o Options) {
	t.Helper()
	start := time.Now()
	Check(t, s, ops, o, max(0, *flagMinimize-minimizeUsed))
	if t.Failed() {
		minimizeUsed += time.Since(start)
	}
}

func needMounts(t *testing.T) {
	t.Helper()
	if reason := CanMount(); reason != "" {
		t.Skip(reason)
	}
}

// candidate returns the union under test for lower layers in format f.
func candidate(t *testing.T, f Format) Mounter {
	switch *flagCand {
	case "unionfsd":
		if f == OCIFormat {
			return UnionfsdOCI
		}
		return Unionfsd
	case "overlay":
		if f == OCIFormat {
			t.Skip("-difftest.cand=overlay: kernel overlay cannot read OCI-format lower layers")
		}
		return Overlay
	}
	t.Fatalf("-difftest.cand=%q: want unionfsd or overlay", *flagCand)
	return Mounter{}
}

// TestHarnessOverlayVsOverlay validates the harness: two kernel overlay
// mounts over identical layers must never diverge, for the random sequences
// and for every scripted case.
func TestHarnessOverlayVsOverlay(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: Overlay}
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			Check(t, s, Random(seed, *flagOps), options(), 0)
		})
	}
	for _, c := range append(scripted, strictScripted...) {
		t.Run(c.name, func(t *testing.T) {
			Check(t, s, c.ops, Options{TreeEvery: 1}, 0)
		})
	}
}

// TestUnionfsdRandom is the seeded random differential test.
func TestUnionfsdRandom(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: candidate(t, OverlayFormat)}
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			start := time.Now()
			check(t, s, Random(seed, *flagOps), options())
			t.Logf("%d ops in %v", *flagOps, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestUnionfsdScripted runs the hand-written sequences, comparing the merged
// trees after every op.
func TestUnionfsdScripted(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: candidate(t, OverlayFormat)}
	for _, c := range scripted {
		t.Run(c.name, func(t *testing.T) {
			check(t, s, c.ops, Options{TreeEvery: 1, StrictUpper: *flagStrict})
		})
	}
}

// TestUnionfsdOCILowers gives unionfsd lower layers that use OCI whiteouts
// (".wh.NAME", ".wh..wh..opq") while overlay reads the same layers in its
// own format (char 0/0, trusted.overlay.opaque): merged views, results and
// uppers must still match.
func TestUnionfsdOCILowers(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: candidate(t, OCIFormat)}
	t.Run("lowers-only", func(t *testing.T) {
		Check(t, s, []Op{Readdir(""), Readdir("d1"), Readdir("d2"), Readdir("e")}, Options{TreeEvery: 1}, 0)
	})
	for _, c := range scripted {
		t.Run(c.name, func(t *testing.T) {
			check(t, s, c.ops, Options{TreeEvery: 1, StrictUpper: *flagStrict})
		})
	}
	t.Run("random", func(t *testing.T) {
		check(t, s, Random(seeds()[0]+100, min(*flagOps, 500)), options())
	})
}

// TestUnionfsdDefaultWorkdir runs a short random sequence with no workdir,
// so that unionfsd keeps it inside the upper (the "unionfsd B:A C" style);
// the upper comparison must not see it.
func TestUnionfsdDefaultWorkdir(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: candidate(t, OverlayFormat), CandNoWork: true}
	check(t, s, Random(seeds()[0]+200, min(*flagOps, 300)), options())
}

// TestUnionfsdVariants runs the comparison against unionfsd configured
// the other ways a user can: plain FUSE I/O instead of passthrough,
// requests over FUSE over io_uring (when the kernel has it), and
// metadata-only copy-up (whose upper holds stubs rather than copies, so
// only merged views, results and lowers are compared). Overlay-format
// uppers have their own test (TestUnionfsdOverlayUpperFormat).
func TestUnionfsdVariants(t *testing.T) {
	needMounts(t)
	if *flagCand != "unionfsd" {
		t.Skip("-difftest.cand=" + *flagCand + ": the variants are unionfsd configurations")
	}
	variants := []struct {
		name  string
		tweak func(*unionfs.Config)
		o     Options
		need  func(*testing.T) // skips the variant when the host cannot run it
	}{
		{"no-passthrough", func(c *unionfs.Config) { c.Passthrough = false }, Options{}, nil},
		{"metacopy", func(c *unionfs.Config) { c.Metacopy = true }, Options{SkipUpper: true}, nil},
		{"io_uring", func(c *unionfs.Config) { c.IoUring = unionfs.IoUringOn }, Options{}, NeedIoUring},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			if v.need != nil {
				v.need(t)
			}
			s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: UnionfsdWith("unionfsd-"+v.name, v.tweak)}
			for _, c := range scripted {
				o := v.o
				o.TreeEvery, o.StrictUpper = 1, *flagStrict
				t.Run(c.name, func(t *testing.T) { check(t, s, c.ops, o) })
			}
			o := v.o
			o.TreeEvery, o.StrictUpper = *flagEvery, *flagStrict
			t.Run("random", func(t *testing.T) { check(t, s, Random(seeds()[0]+300, min(*flagOps, 1000)), o) })
		})
	}
}

// TestUnionfsdStrictReaders runs the sequences where a reader that opened a
// lower file before its copy-up reads after it (strictScripted) against
// unionfsd configured to show it the copy-up, as overlay does: lower files
// read through the daemon (lower_passthrough=off), or no passthrough at all.
// With lower passthrough (the default) such a reader keeps the lower copy.
func TestUnionfsdStrictReaders(t *testing.T) {
	needMounts(t)
	if *flagCand != "unionfsd" {
		t.Skip("-difftest.cand=" + *flagCand + ": the variants are unionfsd configurations")
	}
	variants := []struct {
		name  string
		tweak func(*unionfs.Config)
	}{
		{"lower-passthrough-off", func(c *unionfs.Config) { c.LowerPassthrough = false }},
		{"no-passthrough", func(c *unionfs.Config) { c.Passthrough = false }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: UnionfsdWith("unionfsd-"+v.name, v.tweak)}
			for _, c := range strictScripted {
				t.Run(c.name, func(t *testing.T) {
					check(t, s, c.ops, Options{TreeEvery: 1, StrictUpper: *flagStrict})
				})
			}
		})
	}
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: UnionfsdWith("unionfsd-lower-passthrough-off", variants[0].tweak)}
	t.Run("lower-passthrough-off/random", func(t *testing.T) {
		check(t, s, Random(seeds()[0]+400, min(*flagOps, 1000)), options())
	})
}
