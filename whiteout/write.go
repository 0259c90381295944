package whiteout

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Writing, for every package that makes whiteouts and markers in a layer
// or an upper: always relative to an open directory (the caller resolved
// it safely), never through a symlink.

// CreateFileAt makes the OCI marker name (Name(target) or OpaqueName) in
// the open directory dir: an empty regular file with mode 0. An entry
// already there, of any type, is left as it is: the readers count any
// entry under a marker's name, and a symlink there is never followed.
func CreateFileAt(dir int, name string) error {
	fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// MakeDeviceAt makes a kernel-overlay whiteout named name in the open
// directory dir: a character device 0/0. It fails with EEXIST when the
// name is taken, and with EPERM where the filesystem or our privileges
// allow no device (kernel overlay as the upper, kernels before 5.8
// without CAP_MKNOD).
func MakeDeviceAt(dir int, name string) error {
	return unix.Mknodat(dir, name, unix.S_IFCHR, 0)
}
