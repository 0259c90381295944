package runtime

import (
	"strings"

	"golang.org/x/sys/unix"
)

// mountOpts is a mount's option list split the way mount(2) wants it.
type mountOpts struct {
	flags       uintptr   // MS_* flags for the mount itself
	clear       uintptr   // flags the options explicitly turn off (rw, suid, ...)
	propagation []uintptr // MS_PRIVATE, MS_SLAVE, ... each applied by its own call
	data        string    // filesystem-specific options
	bind, rec   bool
}

type flagOpt struct {
	set   bool // true: sets the flag; false: clears it
	value uintptr
}

var mountFlags = map[string]flagOpt{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"dirsync": {true, unix.MS_DIRSYNC}, "remount": {true, unix.MS_REMOUNT},
	"mand": {true, unix.MS_MANDLOCK}, "nomand": {false, unix.MS_MANDLOCK},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "diratime": {false, unix.MS_NODIRATIME},
	"relatime": {true, unix.MS_RELATIME}, "norelatime": {false, unix.MS_RELATIME},
	"strictatime": {true, unix.MS_STRICTATIME}, "nostrictatime": {false, unix.MS_STRICTATIME},
	"silent": {true, unix.MS_SILENT}, "loud": {false, unix.MS_SILENT},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits an OCI mount's options; unknown words become
// filesystem data ("mode=755", "size=65536k", ...).
func parseMountOptions(options []string) mountOpts {
	var o mountOpts
	var data []string
	for _, opt := range options {
		switch {
		case opt == "bind":
			o.bind = true
		case opt == "rbind":
			o.bind, o.rec = true, true
		case opt == "tmpcopyup" || opt == "defaults":
			// tmpcopyup is a runc extension we do not implement; "defaults" means nothing.
		case mountFlags[opt].value != 0:
			f := mountFlags[opt]
			if f.set {
				o.flags |= f.value
				o.clear &^= f.value
			} else {
				o.flags &^= f.value
				o.clear |= f.value
			}
		case propagationFlags[opt] != 0:
			o.propagation = append(o.propagation, propagationFlags[opt])
		default:
			data = append(data, opt)
		}
	}
	o.data = strings.Join(data, ",")
	return o
}
