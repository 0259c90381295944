package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are the nodes every container's /dev gets (runc's list).
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// setupDev fills a /dev the config mounted as a filesystem (not bound from
// the host): device nodes, the /proc/self/fd links and /dev/ptmx.
func (r *rootfsSetup) setupDev() error {
	if !r.ownDev() {
		return nil
	}
	devs := append([]specs.LinuxDevice(nil), defaultDevices...)
	if r.spec.Linux != nil {
		devs = append(devs, r.spec.Linux.Devices...)
	}
	for _, d := range devs {
		if err := r.createDevice(d); err != nil {
			return err
		}
	}
	if err := r.devSymlinks(); err != nil {
		return err
	}
	return r.setupPtmx()
}

// ownDev tells whether /dev is a filesystem of the container's own.
func (r *rootfsSetup) ownDev() bool {
	for _, m := range r.spec.Mounts {
		if filepath.Clean(m.Destination) == "/dev" {
			return m.Type != "bind" && !parseMountOptions(m.Options).bind
		}
	}
	return false
}

// createDevice makes one node. In a user namespace mknod is not allowed,
// so the host's node is bind-mounted on an empty file instead.
func (r *rootfsSetup) createDevice(d specs.LinuxDevice) error {
	dest, err := r.target(d.Path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("device %s: %w", d.Path, err)
	}
	if r.userns {
		return bindDevice(d.Path, dest)
	}
	return mknodDevice(d, dest)
}

func mknodDevice(d specs.LinuxDevice, dest string) error {
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("device %s: unknown type %q", d.Path, d.Type)
	}
	mode := os.FileMode(0o666)
	if d.FileMode != nil {
		mode = *d.FileMode
	}
	os.Remove(dest)
	if err := unix.Mknod(dest, typ|uint32(mode.Perm()), int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return fmt.Errorf("create device %s: %w", d.Path, err)
	}
	// mknod applied the umask.
	if err := unix.Chmod(dest, uint32(mode.Perm())); err != nil {
		return fmt.Errorf("create device %s: %w", d.Path, err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Chown(dest, uid, gid); err != nil {
		return fmt.Errorf("create device %s: %w", d.Path, err)
	}
	return nil
}

func bindDevice(hostPath, dest string) error {
	if err := makeMountPoint(dest, false); err != nil {
		return fmt.Errorf("device %s: %w", hostPath, err)
	}
	if err := unix.Mount(hostPath, dest, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind device %s: %w", hostPath, err)
	}
	return nil
}

// devSymlinks adds the links programs expect in /dev.
func (r *rootfsSetup) devSymlinks() error {
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	for _, l := range links {
		dest, err := r.target(l[1])
		if err != nil {
			return err
		}
		if err := os.Symlink(l[0], dest); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

// setupPtmx points /dev/ptmx at the container's own devpts instance.
func (r *rootfsSetup) setupPtmx() error {
	dest, err := r.target("/dev/ptmx")
	if err != nil {
		return err
	}
	if err := os.Remove(dest); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	if err := os.Symlink("pts/ptmx", dest); err != nil {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	return nil
}
