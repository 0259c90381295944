// Package fuseuring switches the kernel's FUSE over io_uring on and off for
// tests and benchmarks. The switch is the fuse module parameter enable_uring,
// which is machine-wide: the kernel offers io_uring in the INIT of every FUSE
// mount made while it is on (a daemon must still ask for it), and a
// connection that took it keeps it after the parameter goes off again.
package fuseuring

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Param is the fuse module's switch for FUSE over io_uring (Linux 6.14+).
const Param = "/sys/module/fuse/parameters/enable_uring"

// lockPath serializes Set callers across processes (test binaries run in
// parallel), so that none restores the old value under another's mount.
const lockPath = "/run/unionfsd-enable_uring.lock"

// Enabled reports whether the parameter is on; false if the kernel lacks it.
func Enabled() bool {
	b, err := os.ReadFile(Param)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// Set sets the parameter to on and returns the function that puts the old
// value back. Until then it holds a machine-wide lock, so other callers of
// Set wait. The error says why the switch is unavailable: a kernel older
// than 6.14 (no parameter), or not root.
func Set(on bool) (restore func() error, err error) {
	old, err := os.ReadFile(Param)
	if err != nil {
		return nil, fmt.Errorf("FUSE over io_uring unavailable (needs Linux 6.14+ with CONFIG_FUSE_IO_URING): %w", err)
	}
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("FUSE over io_uring: cannot switch %s: %w", Param, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	// Read again under the lock: the value before any of us touched it.
	if old, err = os.ReadFile(Param); err != nil {
		lock.Close()
		return nil, err
	}
	val := "N"
	if on {
		val = "Y"
	}
	if err := os.WriteFile(Param, []byte(val), 0); err != nil {
		lock.Close()
		return nil, fmt.Errorf("FUSE over io_uring: cannot switch %s: %w", Param, err)
	}
	return func() error {
		defer lock.Close() // releases the lock
		if err := os.WriteFile(Param, old, 0); err != nil {
			return fmt.Errorf("restore %s: %w", Param, err)
		}
		return nil
	}, nil
}
