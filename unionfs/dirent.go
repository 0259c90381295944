package unionfs

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawDirent is a directory entry as getdents64 returns it.
type rawDirent struct {
	name  string
	ino   uint64
	dtype uint8
}

// readDirentsFd lists the directory open as fd (read from its start) with
// inode numbers and types and no per-entry stat.
func readDirentsFd(fd int) ([]rawDirent, error) {
	var out []rawDirent
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		out = parseDirents(buf[:n], out)
	}
}

// parseDirents decodes struct linux_dirent64 records.
func parseDirents(b []byte, out []rawDirent) []rawDirent {
	for len(b) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			break
		}
		name := b[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		out = append(out, rawDirent{
			name:  string(name),
			ino:   binary.NativeEndian.Uint64(b[0:8]),
			dtype: b[18],
		})
		b = b[reclen:]
	}
	return out
}
