// Package mountinfo reads /proc/self/mountinfo: the mounts of our mount
// namespace. It imports nothing of ours, so every package can share it.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo. Point, Root and Source are unescaped;
// SuperOpts is left as the kernel wrote it, because an escaped comma
// (\054) in an option value must not split it: unescape each value
// (Unescape) after splitting on commas.
type Mount struct {
	Major, Minor int    // the device of the mounted filesystem
	Root         string // the dir of that filesystem mounted here
	Point        string // the mount point
	FSType       string // "overlay", "fuse.unionfsd", "cgroup2", ...
	Source       string
	SuperOpts    string // the filesystem's own options, comma-separated
}

// Read lists the mounts of our mount namespace, in mountinfo order (a
// later mount on the same point is on top of an earlier one).
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads mountinfo lines from r; lines it cannot parse are skipped.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := ParseLine(sc.Text()); ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// ParseLine parses one mountinfo line:
//
//	ID parentID major:minor root mountpoint options [optional...] - fstype source superopts
func ParseLine(line string) (Mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	f, g := strings.Fields(pre), strings.Fields(post)
	if !ok || len(f) < 5 || len(g) < 2 {
		return Mount{}, false
	}
	m := Mount{Root: Unescape(f[3]), Point: Unescape(f[4]), FSType: g[0], Source: Unescape(g[1])}
	if _, err := fmt.Sscanf(f[2], "%d:%d", &m.Major, &m.Minor); err != nil {
		return Mount{}, false
	}
	if len(g) >= 3 {
		m.SuperOpts = g[2]
	}
	return m, true
}

// Unescape undoes the kernel's \NNN escapes (\040 for a space, \011,
// \012, \134, \054 in options) in mountinfo fields.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
