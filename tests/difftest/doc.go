// Package difftest compares unionfsd with kernel overlayfs. It builds
// identical layer stacks for both, applies the same operation sequences to
// a unionfsd mount and to a `mount -t overlay` mount, and reports the first
// place where they differ:
//
//   - result: the errno of an op, or what it read (data hash, link target,
//     xattr value or list, stat fields, directory listing);
//   - merged: the merged trees (names, types, modes, owners, sizes, content
//     hashes, link targets, xattrs, and mtimes that were set explicitly);
//   - upper: the upper dirs at the end, after mapping overlay's char 0/0
//     whiteouts and opaque xattrs to OCI ".wh." names (markers that hide
//     nothing are notes, not divergences, unless -difftest.strictupper);
//   - lower: any change to a lower layer;
//   - identity: a new object showing the st_ino of one that existed at
//     mount time (a stale inode mapping);
//   - hang: an op that did not return (stacks are saved, the FUSE
//     connection aborted, the test fails instead of hanging).
//
// Ops run as root and, now and then, as uid 1000 without groups;
// TestUnionfsdUsers runs them as root and two unprivileged users who share
// a supplementary group (SharedLayers: a sticky dir, setgid dirs,
// group-only modes), so permission checks are compared too.
//
// Kernel overlay runs with redirect_dir=off, so it refuses to rename
// directories with lower parts (EXDEV); the harness then redoes the rename
// on the overlay side the way mv(1) falls back, and expects unionfsd's
// direct rename to end in the same state.
//
// Run as root (the FUSE tests share a lock, see the repository notes):
//
//	flock /tmp/unionfsd-fusetest.lock go test ./tests/difftest/
//	flock /tmp/unionfsd-fusetest.lock go test ./tests/difftest/ -run TestUnionfsdRandom \
//		-difftest.seed=7 -difftest.ops=20000
//	flock /tmp/unionfsd-fusetest.lock go test ./tests/difftest/ -difftest.cand=overlay  # harness self-check
//
// A divergence is printed as "op #N Op(...): check overlay=<...>
// unionfsd=<...>", followed by a minimal op sequence that reproduces it,
// as Go code ready to paste into the scripted cases.
package difftest
