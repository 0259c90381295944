package unionfs

import "time"

// Config describes one union mount. Paths are absolute after Validate.
type Config struct {
	// Lowers are the read-only layers, topmost first (overlay's lowerdir order).
	Lowers []string
	// Upper is the writable layer; empty gives a read-only union.
	Upper string
	// Work is the scratch dir for atomic copy-up; it must be on Upper's
	// filesystem. Empty with a non-empty Upper means DefaultWorkName inside Upper.
	Work string

	// Kernel cache timeouts: how long a change made directly in a layer dir
	// may stay invisible through the mount when it is not watched.
	// TimeoutAuto (the default) is WatchedTimeout where the layers are
	// watched and ShortTimeout where they are not; any other value is used
	// as given (watch.go).
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration
	// Watch says how changes made directly in the layer dirs reach the
	// kernel's caches: WatchAuto (fanotify when the daemon may use it,
	// short timeouts otherwise), WatchFanotify, WatchInotify or WatchOff (only the
	// timeouts; "" is WatchOff). See watch.go.
	Watch string
	// Warn receives the one-line warnings of watching (a layer that cannot
	// be watched); nil prints them on stderr.
	Warn func(msg string)

	// Passthrough asks the kernel to do reads and writes on the backing file
	// directly (FUSE passthrough, Linux >= 6.9, needs CAP_SYS_ADMIN); it falls
	// back to ordinary FUSE I/O when the kernel refuses.
	Passthrough bool
	// LowerPassthrough passes lower files through too in a writable union
	// (with Passthrough, and only when the daemon has CAP_SYS_ADMIN). A
	// reader that opened a lower file before it was copied up then keeps
	// reading the lower copy, as overlay did before Linux 4.19 (see
	// lowerpt.go). Off, lower files are read through the daemon and such a
	// reader sees the copy-up, as with today's overlay.
	LowerPassthrough bool
	// Fsync makes copy-up fsync the copied file before renaming it into the
	// upper (fuse-overlayfs's fsync=1). Off trades crash durability for speed;
	// atomicity (no half file ever visible) holds either way.
	Fsync bool
	// AllowOther lets users other than the mounter use the mount.
	AllowOther bool
	// NoExec mounts with MS_NOEXEC: nothing in the union can be executed.
	NoExec bool
	// Suid and Dev clear MS_NOSUID and MS_NODEV, which are set by default
	// (as fusermount does): setuid/setgid bits then take effect on exec and
	// device nodes can be opened. Only root can mount that way.
	Suid, Dev bool
	// Debug logs every FUSE request to stderr.
	Debug bool
	// FsName is shown as the source in /proc/mounts.
	FsName string
	// Trace, when set, receives one Event per operation (unionfsd --trace).
	Trace Tracer

	// UIDMap and GIDMap present ids stored in the layers (host ids) as
	// container ids, and store new ids the other way, as fuse-overlayfs's
	// uidmapping=/gidmapping= do. Ids outside the maps show as the overflow
	// id 65534 and cannot be set. Empty maps mean identity.
	UIDMap, GIDMap []IDMap
	// SquashUID and SquashGID, when set, show every file as owned by that
	// id (fuse-overlayfs's squash_to_uid/squash_to_gid; squash_to_root sets
	// both to 0). Ownership changes still land in the upper. No caller gets
	// more than the real owner and mode allow: see squash.go.
	SquashUID, SquashGID *uint32
	// StaticNlink reports nlink 1 for every directory (static_nlink).
	StaticNlink bool
	// WhiteoutFormat is what deletions write into the upper: WhiteoutOCI
	// (".wh.NAME" files, ".wh..wh..opq" markers; the default) or
	// WhiteoutOverlay (0/0 char devices and the trusted.overlay.opaque xattr,
	// user.overlay.opaque when not root), for callers that read the upper
	// with kernel-overlay tools. Both formats are always read.
	WhiteoutFormat string
	// Metacopy makes chown, chmod, utimes and xattr changes copy metadata
	// only: the upper gets an empty file carrying the new metadata and a
	// pointer xattr naming the lower data (internal/metacopy: name, value
	// and when it is trusted), which is copied on the first open for write
	// or truncate. Off, pointers found in the upper are refused (EPERM).
	Metacopy bool
	// IoUring is how requests travel between the kernel and the daemon
	// (-o io_uring=): IoUringOn serves them over FUSE over io_uring (Linux
	// 6.14+ with the fuse module parameter enable_uring=Y) and fails the
	// mount when that is unavailable; IoUringAuto uses it when the kernel
	// offers it and /dev/fuse otherwise; IoUringOff ("" too) always
	// /dev/fuse.
	IoUring string
}

// IDMap maps Size ids from ContainerID (what the mount shows) to HostID
// (what the layers store).
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// Whiteout formats for Config.WhiteoutFormat.
const (
	WhiteoutOCI     = "oci"
	WhiteoutOverlay = "overlay"
)

// Values of Config.IoUring.
const (
	IoUringAuto = "auto"
	IoUringOn   = "on"
	IoUringOff  = "off"
)

// DefaultWorkName is the workdir used inside the upper when none is given
// (unionfs-fuse style mounts). Names starting with ".wh..wh." are reserved
// markers: hidden from the merged view and skipped by layer export, the way
// aufs kept ".wh..wh.plnk" inside its branches.
const DefaultWorkName = ".wh..wh.unionfsd.work"

// DefaultConfig returns the defaults the command line starts from.
func DefaultConfig() Config {
	return Config{
		EntryTimeout:     TimeoutAuto,
		AttrTimeout:      TimeoutAuto,
		NegativeTimeout:  TimeoutAuto,
		Watch:            WatchAuto,
		Passthrough:      true,
		LowerPassthrough: true,
		Fsync:            true,
		FsName:           "unionfsd",
		WhiteoutFormat:   WhiteoutOCI,
		IoUring:          IoUringAuto,
	}
}
