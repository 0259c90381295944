package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the daemon's GOGC unless the environment sets one. Most of
// the daemon's live heap is the nodes the kernel holds, one per entry it
// has looked up (about 400 bytes each, most of it go-fuse's): 21 MB after
// a find over 50k entries. Go's default of 100 lets the heap grow to twice
// the live heap before it collects; 50 stops it at 1.5 times. Measured on
// the bench's data set (docs/bench.md, optimisation log): peak RSS after
// that find 40 -> 36 MiB, for about 0.1 s more GC CPU per find and 0.2 s
// per untar of 20k files (of 7-12 s of daemon CPU).
const gcPercent = 50

// setGCPercent applies gcPercent unless GOGC is set.
func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
