// Package procfs reads process facts from /proc. It imports nothing of ours,
// so every package can share it.
package procfs

import (
	"fmt"
	"os"
	"strings"
)

// StatusField returns the fields of the line "name:" of /proc/PID/status
// (PID "self" for this process), split on white space: ["1234", "kB"] for
// VmHWM, the group ids for Groups, ["0022"] for Umask.
func StatusField(pid, name string) ([]string, error) {
	p := "/proc/" + pid + "/status"
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Fields(v), nil
		}
	}
	return nil, fmt.Errorf("%s: no %s line", p, name)
}
