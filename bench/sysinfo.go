package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
)

// sysInfo is what the report says about the machine and the software.
type sysInfo struct {
	Host     string
	Kernel   string
	CPU      string
	Cores    int
	Memory   string
	CacheFS  string
	Go       string
	Versions []string // "tool: version"
}

func collectSysInfo(e *env, methods []*method) sysInfo {
	var u unix.Utsname
	unix.Uname(&u)
	si := sysInfo{
		Kernel: unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:]),
		Host:   unix.ByteSliceToString(u.Nodename[:]),
		CPU:    cpuModel(), Cores: runtime.NumCPU(), Memory: memTotal(),
		CacheFS: fsOf(e.cache), Go: runtime.Version(),
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		si.Kernel += ", Debian " + strings.TrimSpace(string(b))
	}
	si.Versions = append(si.Versions, "unionfsd: "+firstLine(e.unionfsd, "--version"))
	for _, t := range [][]string{
		{"fuse-overlayfs", "--version"}, {"unionfs", "--version"}, {"fio", "--version"},
		{"runc", "--version"}, {"umoci", "--version"}, {"podman", "--version"}, {"tar", "--version"}, {"find", "--version"},
	} {
		if p, err := exec.LookPath(t[0]); err == nil {
			si.Versions = append(si.Versions, t[0]+": "+versionLine(p, t[1], t[0]))
		} else {
			si.Versions = append(si.Versions, t[0]+": not installed")
		}
	}
	return si
}

func firstLine(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return lastLine(strings.SplitN(string(out), "\n", 2)[0])
}

// versionLine finds the line of "tool --version" that names the tool's own
// version (fuse tools print libfuse's first).
func versionLine(bin, flag, name string) string {
	out, _ := exec.Command(bin, flag).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l), strings.ToLower(name)) && !strings.Contains(l, "fusermount") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[0])
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(v, &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

// fsOf names the filesystem type holding dir, from /proc/self/mountinfo.
func fsOf(dir string) string {
	mounts, err := inspect.Mounts()
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, m := range mounts {
		p := m.Point
		if (dir == p || strings.HasPrefix(dir, strings.TrimSuffix(p, "/")+"/")) && len(p) >= len(best) {
			best, typ = p, m.FSType
		}
	}
	return typ + " (" + best + ")"
}
