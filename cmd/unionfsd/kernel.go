package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/beneath"
)

// checkKernel probes, before anything is mounted, for what unionfsd cannot
// work without: openat2 with RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS and
// RESOLVE_NO_MAGICLINKS (Linux 5.6), which resolves every path inside a
// layer. Everything newer has a fallback (README, "Kernel").
func checkKernel() error {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("/: %w", err)
	}
	defer unix.Close(root)
	fd, err := beneath.Openat(root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	release := "unknown"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("unionfsd needs openat2 (Linux 5.6+), which this kernel (%s) does not have: "+
			"every path inside a layer is resolved with it", release)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("unionfsd needs openat2, which a seccomp filter refuses here (EPERM; kernel %s): "+
			"allow openat2 in the container's seccomp profile", release)
	}
	return fmt.Errorf("unionfsd needs openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS "+
		"(Linux 5.6+): the probe failed: %v (kernel %s)", err, release)
}
