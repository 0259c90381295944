package main

import (
	"strings"

	"github.com/unionfsd/unionfsd/unionfs"
)

// branchLayers handles "BRANCH[=RW|=RO][:BRANCH...] MOUNTPOINT".
func branchLayers(cfg *unionfs.Config, pos []string, mountpoint *string) error {
	switch len(pos) {
	case 2:
	case 0:
		return usagef("missing BRANCHES and MOUNTPOINT (see unionfsd --help)")
	case 1:
		return usagef("%s: missing MOUNTPOINT (or -o lowerdir=...)", pos[0])
	default:
		return usagef("too many arguments: want BRANCHES MOUNTPOINT, got %q", pos)
	}
	upper, lowers, err := parseBranches(pos[0])
	if err != nil {
		return err
	}
	cfg.Upper, cfg.Lowers = upper, lowers
	*mountpoint = pos[1]
	return nil
}

// dirsLayers handles unionfs-fuse's "-o dirs=BRANCHES [SOURCE] MOUNTPOINT",
// the form an fstab entry can use.
func dirsLayers(cfg *unionfs.Config, spec string, pos []string, mountpoint *string) error {
	if err := sourceAndMountpoint(cfg, pos, "dirs=", mountpoint); err != nil {
		return err
	}
	upper, lowers, err := parseBranches(spec)
	if err != nil {
		return err
	}
	cfg.Upper, cfg.Lowers = upper, lowers
	return nil
}

// branch is one element of a unionfs-fuse branch list.
type branch struct {
	path string
	mode string // "RW", "RO" or "" when unmarked
}

// parseBranches splits "B1[=RW|=RO]:B2..." (top first). Without any mark
// the first branch is the writable upper; with marks, unmarked branches are
// read-only, as in unionfs-fuse.
func parseBranches(spec string) (upper string, lowers []string, err error) {
	var branches []branch
	marked := false
	for _, part := range splitList(spec, ':') {
		b, err := parseBranch(part, spec)
		if err != nil {
			return "", nil, err
		}
		marked = marked || b.mode != ""
		branches = append(branches, b)
	}
	if !marked {
		return branches[0].path, pathsOf(branches[1:]), nil
	}
	if err := checkRWPlacement(branches); err != nil {
		return "", nil, err
	}
	if branches[0].mode == "RW" {
		return branches[0].path, pathsOf(branches[1:]), nil
	}
	return "", pathsOf(branches), nil
}

// parseBranch splits "PATH=MODE". A final "=..." with no '/' in it is a mode
// mark; a path whose last element contains '=' can be given as "PATH=RO".
func parseBranch(part, spec string) (branch, error) {
	if part == "" {
		return branch{}, usagef("%s: empty branch in the branch list", spec)
	}
	i := strings.LastIndexByte(part, '=')
	if i < 0 || strings.Contains(part[i+1:], "/") {
		return branch{path: part}, nil
	}
	b := branch{path: part[:i], mode: strings.ToUpper(part[i+1:])}
	if b.mode != "RW" && b.mode != "RO" {
		return branch{}, usagef("%s: unknown branch mode %q (want =RW or =RO)", b.path, part[i+1:])
	}
	if b.path == "" {
		return branch{}, usagef("%s: branch mark without a path", part)
	}
	return b, nil
}

// checkRWPlacement enforces at most one =RW branch, and only on top: the
// union has a single writable layer and it must hide everything below it.
func checkRWPlacement(branches []branch) error {
	rw := -1
	for i, b := range branches {
		if b.mode != "RW" {
			continue
		}
		if rw >= 0 {
			return usagef("%s: second =RW branch (only one branch can be writable)", b.path)
		}
		rw = i
	}
	if rw > 0 {
		return usagef("%s: the =RW branch must come first (the top branch is the writable one)", branches[rw].path)
	}
	return nil
}

func pathsOf(bs []branch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.path)
	}
	return out
}

// splitList splits s at each sep not preceded by a backslash, and turns
// "\sep" into sep. It never returns an empty slice.
func splitList(s string, sep byte) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == sep:
			cur.WriteByte(sep)
			i++
		case s[i] == sep:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}
