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

// layerDir is one layer dir of the union and what it serves as.
type layerDir struct{ path, role string }

func layerDirs(cfg *unionfs.Config) []layerDir {
	var out []layerDir
	if cfg.Upper != "" {
		out = append(out, layerDir{cfg.Upper, "upper dir"})
	}
	if cfg.Work != "" {
		out = append(out, layerDir{cfg.Work, "workdir"})
	}
	for _, l := range cfg.Lowers {
		out = append(out, layerDir{l, "lower dir"})
	}
	return out
}

// checkLayersApart rejects a mountpoint that overlaps a layer dir, as
// kernel overlay refuses overlapping layers. A mountpoint on or above a
// layer would hide it. A mountpoint inside a layer puts the union inside
// itself: the daemon's own accesses to that layer then enter the union,
// and an operation that holds the union's write lock while it lists
// through its own mount deadlocks every process using it. Paths can hide
// the overlap (symlinks, bind mounts), so dirs are compared by device and
// inode along the whole ancestor chain. It runs before Validate, which may
// create the workdir: a layer that does not exist yet is checked through
// its nearest existing ancestor, for the mountpoint above it.
func checkLayersApart(mnt string, cfg *unionfs.Config) error {
	mntChain, err := ancestorIDs(mnt)
	if err != nil {
		return fmt.Errorf("%s: mountpoint: %w", mnt, err)
	}
	var placed []placedLayer
	for _, l := range layerDirs(cfg) {
		existing, exists := nearestExisting(l.path)
		chain, err := ancestorIDs(existing)
		if err != nil {
			continue // Validate reports a bad layer dir
		}
		if chain.has(mntChain[0]) {
			return fmt.Errorf("%s: mountpoint would hide layer dir %s (the %s)", mnt, l.path, l.role)
		}
		if exists && mntChain.has(chain[0]) {
			return fmt.Errorf("%s: mountpoint is inside %s %s: the union would contain itself", mnt, l.role, l.path)
		}
		placed = append(placed, placedLayer{l, chain, exists})
	}
	return checkLayerPairs(placed)
}

// placedLayer is a layer dir with the ids of its nearest existing dir and
// that dir's ancestors.
type placedLayer struct {
	layerDir
	chain  idChain
	exists bool
}

// checkLayerPairs rejects two layer dirs of which one is, or is inside, the
// other, as kernel overlay does ("overlapping lowerdir path", "conflicting
// lowerdir path"): a layer would show inside another, and an upper or
// workdir inside a lower would let writes through the union change a lower
// layer. Validate checks the same by path; ids also catch bind mounts. A
// workdir inside the upper is left to Validate, which allows it under a
// reserved name.
func checkLayerPairs(layers []placedLayer) error {
	for i, a := range layers {
		for j, b := range layers {
			if i == j || a.role == "workdir" && b.role == "upper dir" || a.role == "upper dir" && b.role == "workdir" {
				continue
			}
			// A layer still to be made lies below its nearest existing dir.
			if !b.exists || !a.chain.has(b.chain[0]) {
				continue
			}
			if a.exists && a.chain[0] == b.chain[0] {
				if i < j {
					return fmt.Errorf("%s: %s is also a %s (%s)", a.path, a.role, b.role, b.path)
				}
				continue
			}
			return fmt.Errorf("%s: %s is inside %s %s", a.path, a.role, b.role, b.path)
		}
	}
	return nil
}

// dirID identifies a dir across paths, symlinks and bind mounts.
type dirID struct{ dev, ino uint64 }

// idChain is a dir's id followed by those of its ancestors up to the root.
type idChain []dirID

func (c idChain) has(id dirID) bool {
	for _, x := range c {
		if x == id {
			return true
		}
	}
	return false
}

// ancestorIDs walks from dir to the root through "..", which follows the
// mount tree (a bind mount's ".." is the dir it is mounted on).
func ancestorIDs(dir string) (idChain, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var chain idChain
	for {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, err
		}
		id := dirID{uint64(st.Dev), st.Ino}
		if chain.has(id) { // ".." of the root is the root
			unix.Close(fd)
			return chain, nil
		}
		chain = append(chain, id)
		parent, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		fd = parent
	}
}

// nearestExisting returns p when it exists, else its nearest existing
// ancestor (for a workdir Validate is yet to create).
func nearestExisting(p string) (string, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p, false
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		var st unix.Stat_t
		if unix.Stat(dir, &st) == nil {
			return dir, dir == abs
		}
		if dir == "/" {
			return dir, false
		}
	}
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
