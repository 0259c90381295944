package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/unionfs"
)

// checkMountpoint checks that mnt is an existing dir that is not already a
// mount point and returns its absolute, symlink-free path.
func checkMountpoint(mnt string) (string, error) {
	if mnt == "" {
		return "", usagef("empty MOUNTPOINT")
	}
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return "", fmt.Errorf("%s: mountpoint: %w", mnt, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return "", fmt.Errorf("%s: mountpoint: %w", abs, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", fmt.Errorf("%s: mountpoint: %w", abs, unix.ENOTDIR)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s: mountpoint: %w", abs, err)
	}
	busy, err := isMountPoint(real)
	if err != nil {
		return "", err
	}
	if busy {
		return "", fmt.Errorf("%s: mountpoint busy: something is already mounted there (umount it first)", real)
	}
	return real, nil
}

// isMountPoint reports whether dir (absolute, symlink-free) is the mount
// point of a mount in our mount namespace.
func isMountPoint(dir string) (bool, error) {
	busy, err := inspect.IsMountPoint(dir)
	if err != nil {
		return false, fmt.Errorf("/proc/self/mountinfo: %w", unwrapPath(err))
	}
	return busy, nil
}

// checkHidesNoLayer rejects a mountpoint on or above a layer dir: the mount
// would cover the layer, and the daemon's own accesses to it would loop back
// into the union.
func checkHidesNoLayer(mnt string, cfg *unionfs.Config) error {
	layers := append([]string{cfg.Upper, cfg.Work}, cfg.Lowers...)
	for _, l := range layers {
		if l != "" && (l == mnt || strings.HasPrefix(l, mnt+"/") || mnt == "/") {
			return fmt.Errorf("%s: mountpoint would hide layer dir %s", mnt, l)
		}
	}
	return nil
}

// checkCanMount checks what a FUSE mount needs before we try: the device,
// and for users other than root the setuid helper and, for allow_other, the
// permission in /etc/fuse.conf. Mount itself still reports anything else.
func checkCanMount(mnt string, cfg *unionfs.Config, euid int) error {
	var st unix.Stat_t
	if err := unix.Stat("/dev/fuse", &st); err != nil {
		return fmt.Errorf("/dev/fuse: %w (load the fuse module: modprobe fuse)", err)
	}
	if euid == 0 {
		fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("/dev/fuse: cannot open: %w", err)
		}
		unix.Close(fd)
		return nil
	}
	if cfg.Suid || cfg.Dev {
		opt := "suid"
		if !cfg.Suid {
			opt = "dev"
		}
		return fmt.Errorf("%s: -o %s: only root can mount with setuid bits or device nodes honoured", mnt, opt)
	}
	if !haveFusermount() {
		return fmt.Errorf("%s: not allowed to mount: not root and no fusermount3 in PATH (install fuse3)", mnt)
	}
	if cfg.AllowOther && !userAllowOther() {
		return fmt.Errorf("%s: allow_other: not allowed for users other than root "+
			"unless /etc/fuse.conf has user_allow_other", mnt)
	}
	return nil
}

func haveFusermount() bool {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
	}
	return false
}

// userAllowOther reports whether /etc/fuse.conf lets users use allow_other.
func userAllowOther() bool {
	data, err := os.ReadFile("/etc/fuse.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}

// unwrapPath drops the op and path of an *os.PathError when the message
// names the path already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
