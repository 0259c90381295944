package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/unionfs"
)

// options is a parsed command line: the union to mount and how to run.
type options struct {
	cfg        unionfs.Config
	mountpoint string
	foreground bool
	help       bool
	version    bool
	trace      traceOptions
}

// usageError is bad command-line syntax (exit status 2), as opposed to input
// that parses but does not work, such as a missing dir (exit status 1).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// flagValues holds the flags as pflag sees them, before they are merged
// with the -o options into a unionfs.Config.
type flagValues struct {
	mountOpts   []string
	foreground  bool
	debug       bool
	workdir     string
	passthrough bool
	lowerPT     bool
	ioUring     string
	timeout     time.Duration
	entry       time.Duration
	attr        time.Duration
	negative    time.Duration
	whiteout    string
	watch       string
	trace       string
	tracePaths  []string
	traceOps    []string
	help        bool
	version     bool
}

func newFlagSet(v *flagValues) *pflag.FlagSet {
	def := unionfs.DefaultConfig()
	fs := pflag.NewFlagSet("unionfsd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringArrayVarP(&v.mountOpts, "option", "o", nil, "mount options")
	fs.BoolVarP(&v.foreground, "foreground", "f", false, "stay in the foreground")
	fs.BoolVarP(&v.debug, "debug", "d", false, "log FUSE requests (implies -f)")
	fs.StringVar(&v.workdir, "workdir", "", "copy-up scratch dir")
	fs.BoolVar(&v.passthrough, "passthrough", def.Passthrough, "FUSE passthrough I/O")
	fs.BoolVar(&v.lowerPT, "lower-passthrough", def.LowerPassthrough, "pass lower files through in a writable union")
	fs.StringVar(&v.ioUring, "io-uring", def.IoUring, "FUSE over io_uring: auto, on or off")
	fs.DurationVar(&v.timeout, "timeout", def.EntryTimeout, "all kernel cache timeouts")
	fs.DurationVar(&v.entry, "entry-timeout", def.EntryTimeout, "name cache timeout")
	fs.DurationVar(&v.attr, "attr-timeout", def.AttrTimeout, "attribute cache timeout")
	fs.DurationVar(&v.negative, "negative-timeout", def.NegativeTimeout, "missing-name cache timeout")
	fs.StringVar(&v.whiteout, "whiteout-format", def.WhiteoutFormat, "deletions in the upper: oci or overlay")
	fs.StringVar(&v.watch, "watch", def.Watch, "direct layer changes: auto, fanotify, inotify or off")
	fs.StringVar(&v.trace, "trace", "", "trace operations to FILE (stderr without =FILE)")
	fs.Lookup("trace").NoOptDefVal = traceStderr
	fs.StringArrayVar(&v.tracePaths, "trace-path", nil, "trace only paths under this prefix")
	fs.StringArrayVar(&v.traceOps, "trace-op", nil, "trace only these operations")
	fs.BoolVarP(&v.help, "help", "h", false, "show help")
	fs.BoolVar(&v.version, "version", false, "show version")
	return fs
}

// parseArgs turns the arguments (without the program name) into options.
// euid decides the allow_other default. Errors are *usageError.
func parseArgs(args []string, euid int) (*options, error) {
	var v flagValues
	fs := newFlagSet(&v)
	if err := fs.Parse(args); err != nil {
		return nil, usagef("%v", err)
	}
	o := &options{help: v.help, version: v.version}
	if o.help || o.version {
		return o, nil
	}
	mo, err := parseMountOptions(v.mountOpts)
	if err != nil {
		return nil, err
	}
	if err := applyFlags(fs, &v, mo); err != nil {
		return nil, err
	}
	cfg := unionfs.DefaultConfig()
	if err := layersFromArgs(&cfg, mo, fs.Args(), &o.mountpoint); err != nil {
		return nil, err
	}
	mo.applyTo(&cfg)
	cfg.AllowOther = mo.allowOther || euid == 0
	cfg.Debug = v.debug || mo.debug
	if fs.Changed("trace") && v.trace == "" {
		return nil, usagef("--trace=: empty file name (--trace alone traces to stderr)")
	}
	if o.trace, err = parseTrace(v.trace, v.tracePaths, v.traceOps); err != nil {
		return nil, err
	}
	// Tracing to stderr needs the terminal, which the daemon lets go of.
	o.foreground = v.foreground || cfg.Debug || o.trace.dest == traceStderr
	o.cfg = cfg
	return o, nil
}

// applyFlags merges the long flags into the -o options; a flag given on the
// command line wins over the same setting in -o.
func applyFlags(fs *pflag.FlagSet, v *flagValues, mo *mountOptions) error {
	if fs.Changed("workdir") {
		if v.workdir == "" {
			return usagef("--workdir: empty path")
		}
		mo.workdir = v.workdir
	}
	if fs.Changed("passthrough") {
		mo.passthrough = &v.passthrough
	}
	if fs.Changed("lower-passthrough") {
		mo.lowerPT = &v.lowerPT
	}
	if fs.Changed("io-uring") {
		m, err := parseIoUring("--io-uring "+v.ioUring, v.ioUring)
		if err != nil {
			return err
		}
		mo.ioUring = m
	}
	if fs.Changed("whiteout-format") {
		f, err := parseWhiteoutFormat("--whiteout-format "+v.whiteout, v.whiteout)
		if err != nil {
			return err
		}
		mo.whiteoutFormat = f
	}
	if fs.Changed("watch") {
		w, err := parseWatch("--watch "+v.watch, v.watch)
		if err != nil {
			return err
		}
		mo.watch = w
	}
	durations := []struct {
		name string
		val  time.Duration
		dst  []**time.Duration
	}{
		{"timeout", v.timeout, []**time.Duration{&mo.entry, &mo.attr, &mo.negative}},
		{"entry-timeout", v.entry, []**time.Duration{&mo.entry}},
		{"attr-timeout", v.attr, []**time.Duration{&mo.attr}},
		{"negative-timeout", v.negative, []**time.Duration{&mo.negative}},
	}
	for _, d := range durations {
		if !fs.Changed(d.name) {
			continue
		}
		if d.val < 0 {
			return usagef("--%s %v: negative timeout", d.name, d.val)
		}
		for _, dst := range d.dst {
			val := d.val
			*dst = &val
		}
	}
	return nil
}

// layersFromArgs fills the layer fields of cfg from the -o options and the
// positional arguments, in whichever of the two syntaxes they use.
func layersFromArgs(cfg *unionfs.Config, mo *mountOptions, pos []string, mountpoint *string) error {
	if mo.lowerdir != nil || mo.upperdir != "" {
		if err := overlayLayers(cfg, mo, pos, mountpoint); err != nil {
			return err
		}
	} else if err := branchLayers(cfg, pos, mountpoint); err != nil {
		return err
	}
	if mo.workdir != "" {
		if cfg.Upper == "" {
			return usagef("%s: workdir given without an upper dir (upperdir= or a writable branch)", mo.workdir)
		}
		cfg.Work = mo.workdir
	}
	if mo.readOnly {
		// ro: serve the same union without its writable layer.
		cfg.Upper, cfg.Work = "", ""
		if len(cfg.Lowers) == 0 {
			return usagef("ro: the union has no read-only layer to show")
		}
	}
	return nil
}

// overlayLayers handles "-o lowerdir=...,upperdir=... [SOURCE] MOUNTPOINT".
func overlayLayers(cfg *unionfs.Config, mo *mountOptions, pos []string, mountpoint *string) error {
	if mo.lowerdir == nil {
		return usagef("%s: upperdir given without lowerdir", mo.upperdir)
	}
	switch len(pos) {
	case 1:
		*mountpoint = pos[0]
	case 2:
		if pos[0] != "" {
			cfg.FsName = pos[0]
		}
		*mountpoint = pos[1]
	case 0:
		return usagef("missing MOUNTPOINT")
	default:
		return usagef("too many arguments: want [SOURCE] MOUNTPOINT with lowerdir=, got %q", pos)
	}
	cfg.Lowers = mo.lowerdir
	cfg.Upper = mo.upperdir
	return nil
}

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

// mountOptions are the -o settings; nil pointers mean "not given".
type mountOptions struct {
	lowerdir    []string
	upperdir    string
	workdir     string
	readOnly    bool
	allowOther  bool
	debug       bool
	fsync       *bool
	passthrough *bool
	lowerPT     *bool
	ioUring     string // "" when not given
	entry       *time.Duration
	attr        *time.Duration
	negative    *time.Duration
	fsName      string
	watch       string // "" when not given
	// noExec, suid and dev are the mount flags; the last of exec/noexec
	// (suid/nosuid, dev/nodev) wins.
	noExec, suid, dev bool
	containerOptions
}

// containerOptions are the fuse-overlayfs options that containers-storage
// (podman, buildah, CRI-O) passes to its mount_program, and the whiteout
// format of the upper.
type containerOptions struct {
	uidMap, gidMap       []unionfs.IDMap
	squashToRoot         bool
	squashUID, squashGID *uint32
	staticNlink          bool
	whiteoutFormat       string // "" when not given
	metacopy             *bool
}

// ignoredOptions are passed by mount(8), mount.fuse3, fstab entries or
// scripts written for fuse-overlayfs, unionfs-fuse or kernel overlay. They
// have no meaning for us (or are always on) and are accepted silently so
// such command lines keep working.
var ignoredOptions = map[string]bool{
	"rw": true, "atime": true, "noatime": true,
	"diratime": true, "nodiratime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "lazytime": true, "nolazytime": true,
	"sync": true, "async": true, "dirsync": true, "mand": true, "nomand": true,
	"iversion": true, "noiversion": true, "silent": true, "loud": true,
	"auto": true, "noauto": true, "user": true, "nouser": true, "users": true,
	"owner": true, "group": true, "defaults": true, "_netdev": true, "nofail": true,
	"default_permissions": true, "nonempty": true, "cow": true, "userxattr": true,
	// fuse-overlayfs: the mount never enforces ACLs (we do not ask the
	// kernel for FUSE_POSIX_ACL; mode bits decide), so noacl is what we do
	// anyway. ACL xattrs are kept as data.
	"noacl": true,
}

// ignoredValueOptions take a value we ignore: fuse's subtype, overlay
// features that only change the on-disk format of kernel overlay, SELinux
// labels and fstab comments.
var ignoredValueOptions = map[string]bool{
	"subtype": true, "comment": true, "redirect_dir": true, "index": true,
	"xino": true, "nfs_export": true, "uuid": true,
	"context": true, "fscontext": true, "defcontext": true, "rootcontext": true,
}

// parseMountOptions parses every -o argument (comma lists; "\," escapes a
// comma, and so do double quotes around it). For a repeated option the last
// one wins, as with mount(8).
func parseMountOptions(args []string) (*mountOptions, error) {
	mo := &mountOptions{}
	for _, arg := range args {
		for _, opt := range splitOptions(arg) {
			if opt == "" {
				continue
			}
			key, val, hasVal := strings.Cut(opt, "=")
			if err := mo.set(key, val, hasVal); err != nil {
				return nil, err
			}
		}
	}
	return mo, nil
}

// flagOptions take no value and mean something to us.
var flagOptions = map[string]bool{"ro": true, "rw": true, "allow_other": true, "debug": true, "volatile": true,
	"squash_to_root": true, "static_nlink": true,
	"exec": true, "noexec": true, "suid": true, "nosuid": true, "dev": true, "nodev": true}

// set applies one -o option.
func (mo *mountOptions) set(key, val string, hasVal bool) error {
	if hasVal {
		if flagOptions[key] || ignoredOptions[key] {
			return usagef("-o %s=%s: %s takes no value", key, val, key)
		}
		return mo.setValue(key, val)
	}
	switch key {
	case "ro", "rw":
		mo.readOnly = key == "ro"
	case "allow_other":
		mo.allowOther = true
	case "debug":
		mo.debug = true
	case "volatile":
		// overlay's volatile skips syncs: no fsync on copy-up either.
		no := false
		mo.fsync = &no
	case "squash_to_root":
		mo.squashToRoot = true
	case "static_nlink":
		mo.staticNlink = true
	case "exec", "noexec":
		mo.noExec = key == "noexec"
	case "suid", "nosuid":
		mo.suid = key == "suid"
	case "dev", "nodev":
		mo.dev = key == "dev"
	default:
		if ignoredOptions[key] || isUserspaceOption(key) {
			return nil
		}
		if valueOption(key) {
			return usagef("-o %s: needs a value (%s=...)", key, key)
		}
		return usagef("-o %s: unknown mount option", key)
	}
	return nil
}

func valueOption(key string) bool {
	switch key {
	case "lowerdir", "upperdir", "workdir", "fsync", "passthrough", "lower_passthrough", "io_uring", "fsname", "watch",
		"timeout", "entry_timeout", "attr_timeout", "negative_timeout":
		return true
	}
	return ignoredValueOptions[key] || containerValueOptions[key]
}

// setValue applies a key=value option.
func (mo *mountOptions) setValue(key, val string) error {
	var err error
	switch key {
	case "lowerdir":
		mo.lowerdir, err = parseLowerdir(val)
	case "upperdir", "workdir":
		if val == "" {
			return usagef("-o %s=: empty path", key)
		}
		if key == "upperdir" {
			mo.upperdir = val
		} else {
			mo.workdir = val
		}
	case "fsync":
		mo.fsync, err = parseSwitch(key, val)
	case "passthrough":
		mo.passthrough, err = parseSwitch(key, val)
	case "lower_passthrough":
		mo.lowerPT, err = parseSwitch(key, val)
	case "io_uring":
		mo.ioUring, err = parseIoUring("-o io_uring="+val, val)
	case "fsname":
		mo.fsName = val
	case "watch":
		mo.watch, err = parseWatch("-o watch="+val, val)
	case "timeout", "entry_timeout", "attr_timeout", "negative_timeout":
		err = mo.setTimeout(key, val)
	default:
		if containerValueOptions[key] {
			return mo.containerOptions.parse(key, val)
		}
		if ignoredValueOptions[key] || isUserspaceOption(key) {
			return nil
		}
		return usagef("-o %s=%s: unknown mount option", key, val)
	}
	return err
}

// isUserspaceOption reports options of the form x-*: mount(8) and systemd
// keep them for userspace tools (x-systemd.automount, x-mount.mkdir).
func isUserspaceOption(key string) bool {
	return strings.HasPrefix(strings.ToLower(key), "x-")
}

// parseLowerdir splits "L1:L2" (top first); "\:" escapes a colon.
func parseLowerdir(val string) ([]string, error) {
	if val == "" {
		return nil, usagef("-o lowerdir=: empty lowerdir")
	}
	dirs := splitList(val, ':')
	for _, d := range dirs {
		if d == "" {
			return nil, usagef("-o lowerdir=%s: empty layer path in the list", val)
		}
	}
	return dirs, nil
}

// parseSwitch reads on/off style values: 1/0, on/off, yes/no, true/false.
func parseSwitch(key, val string) (*bool, error) {
	var b bool
	switch strings.ToLower(val) {
	case "1", "on", "yes", "true":
		b = true
	case "0", "off", "no", "false":
		b = false
	default:
		return nil, usagef("-o %s=%s: want 1 or 0 (on/off)", key, val)
	}
	return &b, nil
}

// maxTimeoutSeconds keeps fractional seconds far from Duration overflow;
// a day of caching is already more than any use needs.
const maxTimeoutSeconds = 86400

// setTimeout reads SECONDS (fuse style, may be fractional) or a Go
// duration ("250ms").
func (mo *mountOptions) setTimeout(key, val string) error {
	d, err := parseTimeout(val)
	if err != nil {
		return usagef("-o %s=%s: %v", key, val, err)
	}
	set := func(dst **time.Duration) { v := d; *dst = &v }
	switch key {
	case "timeout":
		set(&mo.entry)
		set(&mo.attr)
		set(&mo.negative)
	case "entry_timeout":
		set(&mo.entry)
	case "attr_timeout":
		set(&mo.attr)
	case "negative_timeout":
		set(&mo.negative)
	}
	return nil
}

func parseTimeout(val string) (time.Duration, error) {
	var d time.Duration
	if secs, err := strconv.ParseFloat(val, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs > maxTimeoutSeconds {
			return 0, fmt.Errorf("want at most %d seconds", maxTimeoutSeconds)
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(val); err != nil {
		return 0, errors.New("want seconds (1.5) or a duration (1500ms)")
	}
	if d < 0 {
		return 0, errors.New("negative timeout")
	}
	return d, nil
}

// applyTo copies the tuning options into cfg.
func (mo *mountOptions) applyTo(cfg *unionfs.Config) {
	if mo.fsync != nil {
		cfg.Fsync = *mo.fsync
	}
	if mo.passthrough != nil {
		cfg.Passthrough = *mo.passthrough
	}
	if mo.lowerPT != nil {
		cfg.LowerPassthrough = *mo.lowerPT
	}
	if mo.ioUring != "" {
		cfg.IoUring = mo.ioUring
	}
	if mo.entry != nil {
		cfg.EntryTimeout = *mo.entry
	}
	if mo.attr != nil {
		cfg.AttrTimeout = *mo.attr
	}
	if mo.negative != nil {
		cfg.NegativeTimeout = *mo.negative
	}
	if mo.fsName != "" {
		cfg.FsName = mo.fsName
	}
	if mo.watch != "" {
		cfg.Watch = mo.watch
	}
	cfg.NoExec, cfg.Suid, cfg.Dev = mo.noExec, mo.suid, mo.dev
	mo.containerOptions.configure(cfg)
}

// splitOptions splits an -o argument at commas. "\," is a comma inside a
// value, and so is a comma inside double quotes: containers-storage passes
// SELinux labels as context="system_u:object_r:container_file_t:s0:c1,c2".
// Quotes stay in the option (we ignore context= anyway).
func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == '"':
			quoted = !quoted
			cur.WriteByte('"')
		case s[i] == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// containerValueOptions are the container options that take a value.
var containerValueOptions = map[string]bool{
	"uidmapping": true, "gidmapping": true, "squash_to_uid": true, "squash_to_gid": true,
	"whiteout_format": true, "metacopy": true, "threaded": true, "xattr_permissions": true,
}

// parse applies one of containerValueOptions.
func (co *containerOptions) parse(key, val string) error {
	var err error
	switch key {
	case "uidmapping":
		co.uidMap, err = parseIDMapping(key, val)
	case "gidmapping":
		co.gidMap, err = parseIDMapping(key, val)
	case "squash_to_uid":
		co.squashUID, err = parseID(key, val)
	case "squash_to_gid":
		co.squashGID, err = parseID(key, val)
	case "whiteout_format":
		co.whiteoutFormat, err = parseWhiteoutFormat("-o whiteout_format="+val, val)
	case "metacopy":
		co.metacopy, err = parseSwitch(key, val)
	case "threaded":
		// fuse-overlayfs serves requests on one thread unless threaded=1;
		// we always serve them in parallel.
		err = checkNumber(key, val, math.MaxInt32)
	case "xattr_permissions":
		// fuse-overlayfs can keep ownership and modes of the upper in an
		// override_stat xattr (1: security.fuseoverlayfs.*, 2:
		// user.containers.*) instead of the inode. We always store them in
		// the inode: rootless podman runs us inside its user namespace,
		// where chown to the subordinate ids works.
		err = checkNumber(key, val, 2)
	}
	return err
}

// parseIDMapping reads fuse-overlayfs's "ID:MAPPED:COUNT[:ID:MAPPED:COUNT...]"
// (containers-storage writes its ContainerID:HostID:Size there). As in
// fuse-overlayfs, ID is the id stored in the layers and MAPPED the id the
// mount shows: a layer file owned by ID+k shows as owned by MAPPED+k, and
// a file created or chowned through the mount by MAPPED+k is stored as
// ID+k. In unionfs.IDMap terms ID is HostID (what the layers store) and
// MAPPED is ContainerID (what the mount shows). Unionfs.Config.Validate
// checks sizes, overlaps and the user namespace.
func parseIDMapping(key, val string) ([]unionfs.IDMap, error) {
	// containers-storage writes a colon before the first range
	// ("uidmapping=:0:1:65536"); fuse-overlayfs skips empty fields.
	fields := strings.Split(strings.TrimPrefix(val, ":"), ":")
	if val == "" || val == ":" || len(fields)%3 != 0 {
		return nil, usagef("-o %s=%s: want ID:MAPPED:COUNT, several joined by ':' (e.g. %s=0:100000:65536)",
			key, val, key)
	}
	var maps []unionfs.IDMap
	for i := 0; i < len(fields); i += 3 {
		var n [3]uint32
		for j := range n {
			v, err := strconv.ParseUint(fields[i+j], 10, 32)
			if err != nil {
				return nil, usagef("-o %s=%s: %q is not a number from 0 to %d", key, val, fields[i+j], uint32(math.MaxUint32))
			}
			n[j] = uint32(v)
		}
		maps = append(maps, unionfs.IDMap{HostID: n[0], ContainerID: n[1], Size: n[2]})
	}
	return maps, nil
}

// parseID reads a uid or gid; 4294967295 is (uid_t)-1, "no id", not an id.
func parseID(key, val string) (*uint32, error) {
	v, err := strconv.ParseUint(val, 10, 32)
	if err != nil || v == math.MaxUint32 {
		return nil, usagef("-o %s=%s: want an id from 0 to %d", key, val, uint32(math.MaxUint32-1))
	}
	id := uint32(v)
	return &id, nil
}

// checkNumber checks for a number from 0 to max, for options we accept and
// ignore: a typo still gets an error.
func checkNumber(key, val string, max int64) error {
	v, err := strconv.ParseInt(val, 10, 64)
	if err != nil || v < 0 || v > max {
		return usagef("-o %s=%s: want a number from 0 to %d", key, val, max)
	}
	return nil
}

// parseWhiteoutFormat checks a --whiteout-format / whiteout_format= value;
// what names the setting in the error.
func parseIoUring(what, val string) (string, error) {
	switch v := strings.ToLower(val); v {
	case unionfs.IoUringAuto, unionfs.IoUringOn, unionfs.IoUringOff:
		return v, nil
	}
	return "", usagef("%s: want %s, %s or %s", what, unionfs.IoUringAuto, unionfs.IoUringOn, unionfs.IoUringOff)
}

func parseWhiteoutFormat(what, val string) (string, error) {
	switch strings.ToLower(val) {
	case unionfs.WhiteoutOCI:
		return unionfs.WhiteoutOCI, nil
	case unionfs.WhiteoutOverlay:
		return unionfs.WhiteoutOverlay, nil
	}
	return "", usagef("%s: unknown whiteout format (want %s or %s)", what, unionfs.WhiteoutOCI, unionfs.WhiteoutOverlay)
}

// configure copies the container options into cfg. squash_to_uid and
// squash_to_gid win over squash_to_root, as in fuse-overlayfs.
func (co *containerOptions) configure(cfg *unionfs.Config) {
	cfg.UIDMap, cfg.GIDMap = co.uidMap, co.gidMap
	if co.squashToRoot {
		uid, gid := uint32(0), uint32(0)
		cfg.SquashUID, cfg.SquashGID = &uid, &gid
	}
	if co.squashUID != nil {
		cfg.SquashUID = co.squashUID
	}
	if co.squashGID != nil {
		cfg.SquashGID = co.squashGID
	}
	cfg.StaticNlink = co.staticNlink
	if co.whiteoutFormat != "" {
		cfg.WhiteoutFormat = co.whiteoutFormat
	}
	if co.metacopy != nil {
		cfg.Metacopy = *co.metacopy
	}
}

// parseWatch checks a --watch / watch= value.
func parseWatch(what, val string) (string, error) {
	switch val {
	case unionfs.WatchAuto, unionfs.WatchFanotify, unionfs.WatchInotify, unionfs.WatchOff:
		return val, nil
	}
	return "", usagef("%s: want auto, fanotify, inotify or off", what)
}
