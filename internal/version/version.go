// Package version tells which build of the project a binary is, for
// --version and for what podman info shows of a runtime.
package version

import (
	"runtime/debug"
	"strings"
)

// Override is set at link time by a packager
// (go build -ldflags "-X github.com/unionfsd/unionfsd/internal/version.Override=1.2.3")
// and wins over the build info.
var Override string

// String is the binary's version: Override when set; else the module
// version in the build info (Go 1.24+ stamps a build from a git checkout
// with its tag, or a pseudo-version naming the commit such as
// 0.0.0-20261205135058-044b7c91c4cb+dirty); else, from
// older Go, "dev+" and the first 12 digits of the commit (and "-dirty"
// when the tree had uncommitted changes); else "dev".
func String() string {
	if Override != "" {
		return Override
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return fromBuildInfo(info)
}

func fromBuildInfo(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return strings.TrimPrefix(v, "v")
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev+" + rev
}
