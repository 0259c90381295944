// Package faults holds the fault-injection tests: the upper layer or the
// image store runs out of space (ENOSPC, on a size-limited tmpfs or a
// loop-mounted ext4) or fails its writes (EIO, through device-mapper when
// the kernel has it, else through a FUSE file system that fails writes on
// demand) in the middle of a copy-up, a rename, an untar, an import or a
// commit. Each test checks that the operation returns the error, that
// nothing partial shows in the merged view or the store, that the daemon
// keeps serving, and that the same operation succeeds once the fault is
// gone.
//
// The tests mount file systems and need root; run them through
// /work/wt/fuse-slot (see GUIDE.md).
package faults
