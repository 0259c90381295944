package unionfs

import (
	"fmt"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/unionfsd/unionfsd/internal/fuseuring"
)

// Mount validates cfg, mounts the union at mountpoint and serves it in the
// background. The returned server is ready: the mount is visible when Mount
// returns. Call Unmount on it (or unmount the dir) to stop.
func Mount(mountpoint string, cfg Config) (*fuse.Server, error) {
	server, _, err := mountRoot(mountpoint, cfg)
	return server, err
}

// mountRoot is Mount, also returning the root (tests look inside).
func mountRoot(mountpoint string, cfg Config) (*fuse.Server, *Root, error) {
	// The common reason io_uring=on cannot be honoured is known before
	// mounting: refuse then, rather than show a mount that goes away again.
	if cfg.IoUring == IoUringOn && !fuseuring.Enabled() {
		return nil, nil, fmt.Errorf("mount %s: io_uring=on: the kernel does not offer FUSE over io_uring (%s is not Y)", mountpoint, fuseuring.Param)
	}
	root, err := NewRoot(cfg)
	if err != nil {
		return nil, nil, err
	}
	// Watching starts before the mount serves: a change made after the
	// mount is then never missed.
	root.startWatch()
	opts := root.fuseOptions()
	raw := &rawFS{RawFileSystem: fs.NewNodeFS(root, opts), u: root.u}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		root.Close()
		return nil, nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go func() {
		server.Serve()
		// Serve returns once the mount is gone and no request runs: only
		// now may the layer fds go, or the upper's file system stays busy
		// (cannot be unmounted) for as long as this process lives.
		root.Close()
	}()
	if err := server.WaitMount(); err != nil {
		server.Unmount() // Serve then returns and closes root
		return nil, nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if _, err := server.IoUring(); err != nil && cfg.IoUring == IoUringOn {
		server.Unmount()
		return nil, nil, fmt.Errorf("mount %s: io_uring=on: %w", mountpoint, err)
	}
	return server, root, nil
}

// mountFlagOptions spells the exec/suid/dev choices as mount options. go-fuse
// turns them into MS_* flags for mount(2) (nosuid and nodev by default, as
// fusermount) and passes them to fusermount otherwise.
func mountFlagOptions(cfg *Config) []string {
	var out []string
	if cfg.NoExec {
		out = append(out, "noexec")
	}
	if cfg.Suid {
		out = append(out, "suid")
	}
	if cfg.Dev {
		out = append(out, "dev")
	}
	return out
}

// fuseOptions turns the config into go-fuse options.
func (r *Root) fuseOptions() *fs.Options {
	cfg := &r.u.cfg
	t := pickTimeouts(cfg, ShortTimeout)
	if r.u.watch != nil {
		t = r.u.watch.long
	}
	entry, attr, neg := t.entry, t.attr, t.negative
	opts := &fs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &neg,
		// Mode 0000 is a real mode in a layer; go-fuse would show 0644.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:     cfg.FsName,
			Name:       "unionfsd",
			AllowOther: cfg.AllowOther,
			Debug:      cfg.Debug,
			// The kernel checks permissions against the mode bits we report,
			// as overlay does with the mounter's credentials.
			Options:      append([]string{"default_permissions"}, mountFlagOptions(cfg)...),
			DirectMount:  true,
			MaxReadAhead: 1 << 20,
			// Two layers of stacking: our backing files live on ordinary
			// filesystems, possibly overlay.
			MaxStackDepth: 1,
			// No lock ops: the kernel then keeps POSIX and flock locks
			// itself, which is exact for every process on this host.
			EnableLocks:          false,
			EnableSymlinkCaching: true,
			// We clear setuid/setgid on writes ourselves (killpriv.go).
			// With atomic O_TRUNC an open that truncates arrives as one
			// OPEN with O_TRUNC, so copy-up copies no data; without it
			// the kernel opens for write (a full copy-up) and truncates
			// after, which needs upper space for the whole file.
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2 | fuse.CAP_ATOMIC_O_TRUNC,
		},
	}
	if !cfg.Passthrough {
		opts.MountOptions.MaxStackDepth = 0
	}
	// With io_uring=auto the kernel decides: it offers io_uring in INIT
	// only when its enable_uring parameter is on.
	opts.MountOptions.EnableIoUring = cfg.IoUring == IoUringOn || cfg.IoUring == IoUringAuto
	return opts
}
