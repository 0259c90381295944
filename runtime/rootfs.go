package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootfsSetup does the mount steps of the container init, one function per
// step, in the order of prepare and finish.
type rootfsSetup struct {
	rootfs string // absolute path of the new root, before pivot_root
	bundle string // base of relative bind sources
	spec   *specs.Spec
	userns bool // in a user namespace: no mknod, sysfs may be refused
	union  bool // rootfs is our union mount (already a mount point)
	warn   func(string)
	// beforePivot runs after the mounts, before pivot_root (hooks).
	beforePivot func() error
}

// prepare runs every step before pivot_root, then pivots.
func (r *rootfsSetup) prepare() error {
	steps := []func() error{r.makeMountsPrivate, r.bindRootfs, r.mountAll, r.setupDev, r.runBeforePivot, r.pivotRoot}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// finish runs the steps that work on paths inside the new root.
func (r *rootfsSetup) finish() error {
	steps := []func() error{r.setRootPropagation, r.applySysctls, r.maskPaths, r.readonlyPaths, r.readonlyRoot}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// makeMountsPrivate stops mount events from travelling between the
// container and the host in either direction. (The supervisor did the same
// in its own namespace; this is the container's copy.)
func (r *rootfsSetup) makeMountsPrivate() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	return nil
}

// bindRootfs makes the new root a mount point of its own (pivot_root needs
// one). The union already is; there we only drop the nosuid the FUSE mount
// got, so set-uid programs of the image work as under runc.
func (r *rootfsSetup) bindRootfs() error {
	if r.union {
		unix.Mount("", r.rootfs, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NODEV, "")
		return nil
	}
	st, err := os.Stat(r.rootfs)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("rootfs %s: not a directory", r.rootfs)
	}
	if err := unix.Mount(r.rootfs, r.rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", r.rootfs, err)
	}
	return nil
}

// mountAll mounts the config's mounts in order.
func (r *rootfsSetup) mountAll() error {
	for _, m := range r.spec.Mounts {
		if err := r.mountEntry(m); err != nil {
			return err
		}
	}
	return nil
}

// target resolves a container path inside the rootfs, following symlinks
// as if the rootfs were /, so a hostile image cannot send a mount outside.
func (r *rootfsSetup) target(dest string) (string, error) {
	if !filepath.IsAbs(dest) {
		return "", fmt.Errorf("mount destination %q: not an absolute path", dest)
	}
	p, err := securejoin.SecureJoin(r.rootfs, dest)
	if err != nil {
		return "", fmt.Errorf("mount destination %s: %w", dest, err)
	}
	return p, nil
}

// mountEntry mounts one OCI mount.
func (r *rootfsSetup) mountEntry(m specs.Mount) error {
	o := parseMountOptions(m.Options)
	dest, err := r.target(m.Destination)
	if err != nil {
		return err
	}
	switch {
	case o.bind || m.Type == "bind":
		err = r.mountBind(m, dest, o)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		err = r.mountCgroup(dest, o)
	case m.Type == "sysfs":
		err = r.mountKernelFS(m, dest, o, "/sys")
	case m.Type == "mqueue":
		err = r.mountKernelFS(m, dest, o, "/dev/mqueue")
	default:
		err = r.mountPlain(m, dest, o)
	}
	if err != nil {
		return err
	}
	return setPropagation(dest, o.propagation)
}

func setPropagation(dest string, flags []uintptr) error {
	for _, f := range flags {
		if err := unix.Mount("", dest, "", f, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", dest, err)
		}
	}
	return nil
}

// mountPlain mounts a filesystem by type (proc, tmpfs, devpts, ...).
func (r *rootfsSetup) mountPlain(m specs.Mount, dest string, o mountOpts) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("mount %s: create mount point: %w", m.Destination, err)
	}
	if err := unix.Mount(m.Source, dest, m.Type, o.flags, o.data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Type, m.Destination, err)
	}
	return nil
}

// mountKernelFS mounts sysfs or mqueue; in a user namespace the kernel may
// refuse (sysfs needs a network namespace of our own), and the host's
// instance at hostPath is bind-mounted instead, read-only for sysfs.
func (r *rootfsSetup) mountKernelFS(m specs.Mount, dest string, o mountOpts, hostPath string) error {
	err := r.mountPlain(m, dest, o)
	if err == nil || !r.userns || !errors.Is(err, unix.EPERM) {
		return err
	}
	bind := specs.Mount{Destination: m.Destination, Type: "bind", Source: hostPath}
	o.bind, o.rec = true, true
	return r.mountBind(bind, dest, o)
}

// mountBind bind-mounts a host path, then remounts it with the requested
// flags (a bind mount ignores them on the first call).
func (r *rootfsSetup) mountBind(m specs.Mount, dest string, o mountOpts) error {
	src := m.Source
	if !filepath.IsAbs(src) {
		src = filepath.Join(r.bundle, src)
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind mount %s: source %w", m.Destination, err)
	}
	if err := makeMountPoint(dest, st.IsDir()); err != nil {
		return fmt.Errorf("bind mount %s: %w", m.Destination, err)
	}
	flags := uintptr(unix.MS_BIND)
	if o.rec {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(src, dest, "", flags, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", src, m.Destination, err)
	}
	if o.flags == 0 {
		return nil
	}
	return remountBind(dest, o.flags, o.rec)
}

// remountBind applies flags to a bind mount. Flags the source mount has and
// that are locked in a user namespace (nosuid, nodev, noexec) are kept, or
// the kernel refuses the remount. Read-only goes down to submounts of a
// recursive bind when the kernel has mount_setattr.
func remountBind(dest string, flags uintptr, rec bool) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dest, &sfs); err == nil {
		keep := map[int64]uintptr{unix.ST_NOSUID: unix.MS_NOSUID, unix.ST_NODEV: unix.MS_NODEV, unix.ST_NOEXEC: unix.MS_NOEXEC}
		for st, ms := range keep {
			if sfs.Flags&st != 0 {
				flags |= ms
			}
		}
	}
	if err := unix.Mount("", dest, "", unix.MS_BIND|unix.MS_REMOUNT|flags, ""); err != nil {
		return fmt.Errorf("remount %s: %w", dest, err)
	}
	if rec {
		setRecursiveAttrs(dest, flags)
	}
	return nil
}

// setRecursiveAttrs extends ro, nosuid, nodev and noexec to the submounts
// of a recursive bind (mount_setattr, Linux >= 5.12; older kernels keep
// them as they were).
func setRecursiveAttrs(dest string, flags uintptr) {
	var set uint64
	for ms, attr := range map[uintptr]uint64{unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC} {
		if flags&ms != 0 {
			set |= attr
		}
	}
	if set != 0 {
		unix.MountSetattr(-1, dest, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: set})
	}
}

// makeMountPoint creates dest as a directory, or as an empty file when a
// file is to be mounted on it.
func makeMountPoint(dest string, dir bool) error {
	if dir {
		return os.MkdirAll(dest, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// mountCgroup gives the container a read-only view of cgroups: a cgroup2
// mount where the host is pure cgroup v2, else the host's tree bound
// read-only (what a v1 or hybrid host can offer without the cgroup
// namespace juggling runc does).
func (r *rootfsSetup) mountCgroup(dest string, o mountOpts) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("mount cgroup: %w", err)
	}
	var sfs unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &sfs) == nil && sfs.Type == unix.CGROUP2_SUPER_MAGIC {
		if err := unix.Mount("cgroup2", dest, "cgroup2", o.flags, ""); err == nil {
			return nil
		}
	}
	if err := unix.Mount("/sys/fs/cgroup", dest, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		r.warn(fmt.Sprintf("no cgroup filesystem in the container: %v", err))
		return nil
	}
	return remountBind(dest, o.flags|unix.MS_RDONLY, true)
}

// pivotRoot makes rootfs the root and detaches the old one. pivot_root(".",
// ".") stacks the old root on top of the new one; unmounting "." from the
// old root's directory then removes it without needing a directory for it
// inside the container.
func (r *rootfsSetup) pivotRoot() error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open /: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(r.rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open %s: %w", r.rootfs, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("pivot_root: chdir %s: %w", r.rootfs, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", r.rootfs, err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("pivot_root: chdir to old root: %w", err)
	}
	// The old root must not pass the detach on to the host's mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("pivot_root: make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: chdir /: %w", err)
	}
	return nil
}

// setRootPropagation applies linux.rootfsPropagation (private by default).
func (r *rootfsSetup) setRootPropagation() error {
	p := "rprivate"
	if r.spec.Linux != nil && r.spec.Linux.RootfsPropagation != "" {
		p = r.spec.Linux.RootfsPropagation
	}
	flag, ok := propagationFlags[p]
	if !ok {
		return fmt.Errorf("rootfsPropagation %q: unknown", p)
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return fmt.Errorf("set rootfs propagation %s: %w", p, err)
	}
	return nil
}

// applySysctls writes linux.sysctl through /proc/sys before it goes read-only.
func (r *rootfsSetup) applySysctls() error {
	if r.spec.Linux == nil {
		return nil
	}
	for k, v := range r.spec.Linux.Sysctl {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// maskPaths hides paths: /dev/null over files, an empty read-only tmpfs
// over directories. Missing paths are fine.
func (r *rootfsSetup) maskPaths() error {
	if r.spec.Linux == nil {
		return nil
	}
	for _, p := range r.spec.Linux.MaskedPaths {
		err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		if errors.Is(err, unix.ENOTDIR) {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// readonlyPaths bind-mounts paths read-only over themselves.
func (r *rootfsSetup) readonlyPaths() error {
	if r.spec.Linux == nil {
		return nil
	}
	for _, p := range r.spec.Linux.ReadonlyPaths {
		err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, "")
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
		if err := remountBind(p, unix.MS_RDONLY, false); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}

// readonlyRoot applies root.readonly.
func (r *rootfsSetup) readonlyRoot() error {
	if r.spec.Root == nil || !r.spec.Root.Readonly {
		return nil
	}
	if err := remountBind("/", unix.MS_RDONLY, false); err != nil {
		return fmt.Errorf("make the root read-only: %w", err)
	}
	return nil
}
