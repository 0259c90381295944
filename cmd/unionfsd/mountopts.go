package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/unionfsd/unionfsd/unionfs"
)

// overlayLayers handles "-o lowerdir=...,upperdir=... [SOURCE] MOUNTPOINT".
func overlayLayers(cfg *unionfs.Config, mo *mountOptions, pos []string, mountpoint *string) error {
	if mo.lowerdir == nil {
		return usagef("%s: upperdir given without lowerdir", mo.upperdir)
	}
	if err := sourceAndMountpoint(cfg, pos, "lowerdir=", mountpoint); err != nil {
		return err
	}
	cfg.Lowers = mo.lowerdir
	cfg.Upper = mo.upperdir
	return nil
}

// sourceAndMountpoint reads the "[SOURCE] MOUNTPOINT" that follows layers
// given as options (with: the option the error names); mount(8) passes
// the fstab source first.
func sourceAndMountpoint(cfg *unionfs.Config, pos []string, with string, mountpoint *string) error {
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
		return usagef("too many arguments: want [SOURCE] MOUNTPOINT with %s, got %q", with, pos)
	}
	return nil
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
	peer peerOptions // unionfs-fuse's, libfuse's and fuse-overlayfs's (peeropts.go)
}

// containerOptions are the fuse-overlayfs options that containers-storage

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
	"userxattr": true,
}

// ignoredValueOptions take a value we ignore: overlay's uuid=, SELinux
// labels and fstab comments.
var ignoredValueOptions = map[string]bool{
	"comment": true, "uuid": true,
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
	if peer, err := mo.peer.setPeer(key, val, hasVal); peer {
		return err
	}
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

// parseIoUring checks an --io-uring / io_uring= value; what names the
// setting in the error.
func parseIoUring(what, val string) (string, error) {
	switch v := strings.ToLower(val); v {
	case unionfs.IoUringAuto, unionfs.IoUringOn, unionfs.IoUringOff:
		return v, nil
	}
	return "", usagef("%s: want %s, %s or %s", what, unionfs.IoUringAuto, unionfs.IoUringOn, unionfs.IoUringOff)
}

// parseWatch checks a --watch / watch= value.
func parseWatch(what, val string) (string, error) {
	switch val {
	case unionfs.WatchAuto, unionfs.WatchFanotify, unionfs.WatchInotify, unionfs.WatchOff:
		return val, nil
	}
	return "", usagef("%s: want auto, fanotify, inotify or off", what)
}
