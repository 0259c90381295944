package whiteout

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzTarget checks the rules that tie whiteout names to the names they
// hide, for any name: a plain whiteout names its target and back, markers
// and ordinary names hide nothing, and NameFits says whether the whiteout
// name fits NAME_MAX. `go test` runs it on the seeds; `go test -fuzz
// FuzzTarget ./whiteout` explores.
func FuzzTarget(f *testing.F) {
	for _, c := range nameCases {
		f.Add(c.name)
		if c.target != "" {
			f.Add(c.target)
		}
	}
	f.Add(strings.Repeat("n", 251))
	f.Add(strings.Repeat("n", 252))
	f.Add(OpaqueName)
	f.Fuzz(func(t *testing.T, name string) {
		target, ok := Target(name)
		if ok {
			if Name(target) != name || !IsWhiteoutName(name) || IsOpaqueMarker(name) {
				t.Errorf("Target(%q) = %q, but Name gives %q", name, target, Name(target))
			}
			if target == "" || target == "." || target == ".." || strings.HasPrefix(name, MetaPrefix) {
				t.Errorf("Target(%q) = %q: that hides nothing", name, target)
			}
		} else if target != "" {
			t.Errorf("Target(%q) = %q with ok false", name, target)
		}
		if !IsWhiteoutName(name) && ok {
			t.Errorf("%q is no whiteout name, yet has a target", name)
		}
		if IsOpaqueMarker(name) && (!IsWhiteoutName(name) || ok) {
			t.Errorf("opaque marker %q must be reserved and hide no name", name)
		}
		// The whiteout of any name: reserved, and (unless it is a
		// marker or a dot name) naming that name back.
		wh := Name(name)
		if !IsWhiteoutName(wh) {
			t.Errorf("Name(%q) = %q is not reserved", name, wh)
		}
		back, ok := Target(wh)
		plain := name != "" && name != "." && name != ".." && !IsWhiteoutName(name)
		if plain && (!ok || back != name) {
			t.Errorf("Target(Name(%q)) = %q %v", name, back, ok)
		}
		if NameFits(name) != (len(wh) <= NameMax) {
			t.Errorf("NameFits(%d bytes) = %v", len(name), NameFits(name))
		}
	})
}

// FuzzOverlayWhiteoutMode: a kernel-overlay whiteout is exactly a char
// device numbered 0/0, whatever the permission bits.
func FuzzOverlayWhiteoutMode(f *testing.F) {
	f.Add(uint32(unix.S_IFCHR), uint64(0))
	f.Add(uint32(unix.S_IFCHR|0o644), uint64(0))
	f.Add(uint32(unix.S_IFCHR), unix.Mkdev(1, 3))
	f.Add(uint32(unix.S_IFBLK), uint64(0))
	f.Add(uint32(unix.S_IFREG), uint64(0))
	f.Add(uint32(unix.S_IFCHR), unix.Mkdev(0, 1))
	f.Fuzz(func(t *testing.T, mode uint32, rdev uint64) {
		want := mode&unix.S_IFMT == unix.S_IFCHR && rdev == 0
		st := unix.Stat_t{Mode: mode, Rdev: rdev}
		if IsOverlayWhiteoutMode(mode, rdev) != want || IsOverlayWhiteout(&st) != want {
			t.Errorf("mode %o rdev %d: whiteout %v, want %v", mode, rdev, !want, want)
		}
	})
}
