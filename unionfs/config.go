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
	// may stay invisible through the mount.
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration

	// Passthrough asks the kernel to do reads and writes on the backing file
	// directly (FUSE passthrough, Linux >= 6.9, needs CAP_SYS_ADMIN); it falls
	// back to ordinary FUSE I/O when the kernel refuses.
	Passthrough bool
	// Fsync makes copy-up fsync the copied file before renaming it into the
	// upper (fuse-overlayfs's fsync=1). Off trades crash durability for speed;
	// atomicity (no half file ever visible) holds either way.
	Fsync bool
	// AllowOther lets users other than the mounter use the mount.
	AllowOther bool
	// Debug logs every FUSE request to stderr.
	Debug bool
	// FsName is shown as the source in /proc/mounts.
	FsName string
	// Trace, when set, receives one Event per operation (unionfsd --trace).
	Trace Tracer
}

// DefaultWorkName is the workdir used inside the upper when none is given
// (unionfs-fuse style mounts). Names starting with ".wh..wh." are reserved
// markers: hidden from the merged view and skipped by layer export, the way
// aufs kept ".wh..wh.plnk" inside its branches.
const DefaultWorkName = ".wh..wh.unionfsd.work"

// DefaultConfig returns the defaults the command line starts from.
func DefaultConfig() Config {
	return Config{
		EntryTimeout:    time.Second,
		AttrTimeout:     time.Second,
		NegativeTimeout: time.Second,
		Passthrough:     true,
		Fsync:           true,
		FsName:          "unionfsd",
	}
}
