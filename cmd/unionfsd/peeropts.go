package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/unionfs"
)

// The -o options of unionfs-fuse, libfuse and fuse-overlayfs (and the
// kernel overlay options fuse-overlayfs accepts), so that their command
// lines and fstab entries work here: each is honoured, accepted because it
// is what unionfsd always does, or refused with the reason. README.md's
// "Options from unionfs-fuse, libfuse and fuse-overlayfs" is the same table
// for users; TestReadmePeerOptions keeps the two in step.

// peerOptions are the settings those options make.
type peerOptions struct {
	maxFiles      uint64 // RLIMIT_NOFILE to set; 0 when not given
	chroot        string // dir the branch paths are resolved in
	dirs          string // branch list given as dirs=; "" when not given
	debugFile     string // trace destination from debug_file=
	allowRoot     bool
	hideMetaFiles bool
	autoUnmount   bool // unmount when the daemon dies (autounmount.go)
}

// peerOption is one entry of peerOptionTable.
type peerOption struct {
	value  bool   // takes a value (key=value)
	refuse string // why unionfsd refuses it; "" when accepted
	// set applies the option; nil when it changes nothing here.
	set func(po *peerOptions, key, val string) error
}

// minMaxFiles keeps max_files from starving the daemon itself, which
// needs descriptors for /dev/fuse, every layer and each open file.
const minMaxFiles = 64

var peerOptionTable = map[string]peerOption{
	// unionfs-fuse. Copy-on-write is how unionfsd always works.
	"cow":             {},
	"use_ino":         {}, // st_ino is always the layer's own number
	"statfs_omit_ro":  {}, // statfs always reports the top layer only
	"preserve_branch": {}, // one writable branch: a renamed file stays in it
	"noinitgroups":    {}, // no effect in unionfs-fuse either
	"hide_meta_files": {set: setHideMetaFiles},
	"hide_meta_dir":   {set: setHideMetaFiles},
	"max_files":       {value: true, set: setMaxFiles},
	"chroot":          {value: true, set: setChroot},
	"dirs":            {value: true, set: setDirs},
	"debug_file":      {value: true, set: setDebugFile},
	"relaxed_permissions": {refuse: "unionfsd always lets the kernel check permissions against the mode bits " +
		"(default_permissions)"},
	"direct_io": {refuse: "unionfsd keeps the page cache (or passes files through to the kernel); " +
		"it has no direct-I/O mode"},
	"lbwrite": {refuse: "balances writes over several =RW branches; unionfsd has one writable layer"},

	// libfuse.
	"default_permissions": {}, // always on
	"nonempty":            {}, // mounting over a non-empty dir always works, as in libfuse 3
	"kernel_cache":        {}, // pages are always kept across opens (FOPEN_KEEP_CACHE)
	"allow_root":          {set: func(po *peerOptions, _, _ string) error { po.allowRoot = true; return nil }},
	"subtype":             {value: true, set: checkSubtype},
	"auto_unmount":        {set: func(po *peerOptions, _, _ string) error { po.autoUnmount = true; return nil }},
	"max_read": {value: true, refuse: "the size of read requests is unionfsd's to choose " +
		"(reads of passed-through files never reach it)"},

	// fuse-overlayfs.
	// The mount never enforces ACLs (unionfsd does not ask the kernel for
	// FUSE_POSIX_ACL; mode bits decide), so noacl is what it does anyway.
	// ACL xattrs are kept as data.
	"noacl":     {},
	"fast_ino":  {value: true, set: checkCount},
	"writeback": {value: true, set: checkCount},
	"noxattrs":  {value: true, set: checkNoXattrs},
	"plugins":   {value: true, set: checkPlugins},
	"ino32_t":   {refuse: "st_ino uses 64 bits (layers on different filesystems get an index in the top 8)"},

	// kernel overlay, accepted by fuse-overlayfs too.
	"xino":         {value: true, set: checkXino},
	"redirect_dir": {value: true, set: checkRedirectDir},
	"index":        {value: true, set: checkIndex},
	"nfs_export":   {value: true, set: checkNFSExport},
}

// setPeer applies key (with val when hasVal) if it is in peerOptionTable,
// and reports whether it was.
func (po *peerOptions) setPeer(key, val string, hasVal bool) (bool, error) {
	p, ok := peerOptionTable[key]
	if !ok {
		return false, nil
	}
	opt := key
	if hasVal {
		opt += "=" + val
	}
	switch {
	case p.refuse != "":
		return true, usagef("-o %s: not supported: %s", opt, p.refuse)
	case p.value && !hasVal:
		return true, usagef("-o %s: needs a value (%s=...)", key, key)
	case !p.value && hasVal:
		return true, usagef("-o %s: %s takes no value", opt, key)
	case p.set == nil:
		return true, nil
	}
	return true, p.set(po, key, val)
}

func setHideMetaFiles(po *peerOptions, _, _ string) error {
	po.hideMetaFiles = true
	return nil
}

func setMaxFiles(po *peerOptions, key, val string) error {
	n, err := strconv.ParseUint(val, 10, 64)
	if err != nil || n < minMaxFiles {
		return usagef("-o %s=%s: want a number of open files, at least %d", key, val, minMaxFiles)
	}
	po.maxFiles = n
	return nil
}

func setChroot(po *peerOptions, key, val string) error {
	if val == "" {
		return usagef("-o %s=: empty path", key)
	}
	po.chroot = val
	return nil
}

func setDirs(po *peerOptions, key, val string) error {
	if val == "" {
		return usagef("-o %s=: empty branch list", key)
	}
	po.dirs = val
	return nil
}

func setDebugFile(po *peerOptions, key, val string) error {
	if val == "" {
		return usagef("-o %s=: empty file name", key)
	}
	po.debugFile = val
	return nil
}

// checkSubtype accepts the type unionfsd mounts with: the kernel shows
// fuse.unionfsd whatever is asked.
func checkSubtype(_ *peerOptions, key, val string) error {
	if val != "unionfsd" {
		return usagef("-o %s=%s: not supported: the type is always fuse.unionfsd", key, val)
	}
	return nil
}

// checkCount checks fast_ino= and writeback=, which change nothing here:
// lookups never open lower files to read origin xattrs (what fast_ino=1
// skips), and the kernel's writeback cache is never used (fuse-overlayfs
// also goes without it when the kernel does not offer it).
func checkCount(_ *peerOptions, key, val string) error {
	return checkNumber(key, val, math.MaxInt32)
}

func checkNoXattrs(_ *peerOptions, key, val string) error {
	if err := checkNumber(key, val, math.MaxInt32); err != nil {
		return err
	}
	if n, _ := strconv.Atoi(val); n != 0 {
		return usagef("-o %s=%s: not supported: unionfsd always serves xattrs "+
			"(file capabilities, ACLs and whiteout markers live in them)", key, val)
	}
	return nil
}

func checkPlugins(_ *peerOptions, key, val string) error {
	if val != "" {
		return usagef("-o %s=%s: not supported: unionfsd loads no layer plugins; every layer is a directory", key, val)
	}
	return nil
}

// checkXino: st_ino is always unique in the mount (the layer's own number,
// with the filesystem's index in the top 8 bits when layers span
// filesystems), which is what every xino mode asks for.
func checkXino(_ *peerOptions, key, val string) error {
	switch val {
	case "off", "auto", "on":
		return nil
	}
	return usagef("-o %s=%s: want off, auto or on", key, val)
}

// checkRedirectDir: renamed directories are copied up whole, so no
// redirect xattr is ever written, and none is followed.
func checkRedirectDir(_ *peerOptions, key, val string) error {
	switch val {
	case "off", "nofollow":
		return nil
	case "on", "follow":
		return usagef("-o %s=%s: not supported: unionfsd neither writes nor follows overlay redirect xattrs "+
			"(a renamed directory is copied up whole)", key, val)
	}
	return usagef("-o %s=%s: want off or nofollow", key, val)
}

// checkIndex: hard links of a lower file are separate after a copy-up, as
// with overlay's index=off.
func checkIndex(_ *peerOptions, key, val string) error {
	return offOnly(key, val, "a copy-up of a hard-linked lower file breaks the link, as with index=off")
}

func checkNFSExport(_ *peerOptions, key, val string) error {
	return offOnly(key, val, "unionfsd gives out no file handles for NFS")
}

func offOnly(key, val, why string) error {
	switch strings.ToLower(val) {
	case "off":
		return nil
	case "on":
		return usagef("-o %s=%s: not supported: %s", key, val, why)
	}
	return usagef("-o %s=%s: want off", key, val)
}

// allowOther decides who may use the mount: allow_other, the default for
// root, or libfuse's allow_root (the owner and root). unionfsd can keep
// everyone but root out only when root is the owner: without allow_other
// the kernel lets in only processes of the owner's uids and gids.
func allowOther(mo *mountOptions, euid int) (bool, error) {
	switch {
	case !mo.peer.allowRoot:
		return mo.allowOther || euid == 0, nil
	case mo.allowOther:
		return false, usagef("-o allow_root: allow_other and allow_root exclude each other")
	case euid != 0:
		return false, usagef("-o allow_root: not supported for users other than root: " +
			"unionfsd cannot let root in without letting everyone in (allow_other)")
	}
	return false, nil
}

// prepare does what the options ask of the daemon before it mounts. It
// runs after the mountpoint checks and before the layer checks, which need
// the branch paths chroot= resolves.
func (po *peerOptions) prepare(cfg *unionfs.Config) error {
	if po.chroot != "" {
		if err := resolveInChroot(cfg, po.chroot); err != nil {
			return err
		}
	}
	if po.hideMetaFiles {
		if err := checkNoMetaDirs(cfg); err != nil {
			return err
		}
	}
	if po.maxFiles != 0 {
		return setMaxOpenFiles(po.maxFiles)
	}
	return nil
}

// resolveInChroot resolves the branch paths inside dir, as unionfs-fuse
// does after chroot(2): "/x" and "x" both name dir/x, and symlinks resolve
// as if dir were "/". An explicit --workdir is a path outside.
func resolveInChroot(cfg *unionfs.Config, dir string) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%s: chroot=: %w", dir, err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("%s: chroot=: %w", root, unwrapPath(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: chroot=: %w", root, unix.ENOTDIR)
	}
	resolve := func(p string) (string, error) {
		r, err := securejoin.SecureJoin(root, p)
		if err != nil {
			return "", fmt.Errorf("%s: branch inside chroot=%s: %w", p, root, err)
		}
		return r, nil
	}
	if cfg.Upper != "" {
		if cfg.Upper, err = resolve(cfg.Upper); err != nil {
			return err
		}
	}
	for i, l := range cfg.Lowers {
		if cfg.Lowers[i], err = resolve(l); err != nil {
			return err
		}
	}
	return nil
}

// metaDirName is the dir unionfs-fuse keeps its whiteouts in, in each
// branch; hide_meta_files hides it from listings.
const metaDirName = ".unionfs"

// checkNoMetaDirs refuses hide_meta_files when a branch holds unionfs-fuse's
// metadata dir: unionfsd keeps none of its own (its workdir and whiteouts
// never show), reads no unionfs-fuse whiteouts, and would show that dir.
func checkNoMetaDirs(cfg *unionfs.Config) error {
	for _, l := range layerDirs(cfg) {
		if l.role == "workdir" {
			continue
		}
		p := filepath.Join(l.path, metaDirName)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: hide_meta_files: unionfs-fuse's metadata dir is in this %s; "+
				"unionfsd neither reads its whiteouts nor hides it (move it away to mount with unionfsd)", p, l.role)
		}
	}
	return nil
}

// setMaxOpenFiles sets the soft and hard RLIMIT_NOFILE to n, as
// unionfs-fuse's max_files= does, for a daemon that serves many open files.
func setMaxOpenFiles(n uint64) error {
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		var cur unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &cur)
		return fmt.Errorf("max_files=%d: cannot set the open-file limit: %v (hard limit %d; "+
			"raising it needs root, and /proc/sys/fs/nr_open caps it)", n, err, cur.Max)
	}
	return nil
}
