package difftest

import (
	"testing"

	"github.com/unionfsd/unionfsd/unionfs"
)

// unionfsdOverlayUpper is unionfsd writing its upper in kernel-overlay
// format (--whiteout-format overlay): 0/0 devices and opaque xattrs.
var unionfsdOverlayUpper = Mounter{
	Name:   "unionfsd",
	Format: OverlayFormat,
	Mount: func(lowers []string, upper, work, mnt string) (func() error, error) {
		cfg := unionfs.DefaultConfig()
		cfg.Lowers = append([]string(nil), lowers...)
		cfg.Upper, cfg.Work = upper, work
		cfg.WhiteoutFormat = unionfs.WhiteoutOverlay
		return MountUnionfsd(mnt, cfg)
	},
}

// TestUnionfsdOverlayUpperFormat runs the scripted sequences and a random
// one with unionfsd writing overlay-format whiteouts: merged views, results
// and uppers must match kernel overlay's.
func TestUnionfsdOverlayUpperFormat(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: DefaultLayers(), Ref: Overlay, Cand: unionfsdOverlayUpper}
	for _, c := range scripted {
		t.Run(c.name, func(t *testing.T) {
			check(t, s, c.ops, Options{TreeEvery: 1, StrictUpper: *flagStrict})
		})
	}
	t.Run("random", func(t *testing.T) {
		check(t, s, Random(seeds()[0]+300, min(*flagOps, 500)), options())
	})
}
