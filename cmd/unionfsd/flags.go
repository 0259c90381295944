package main

import (
	"fmt"
	"io"
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
	peer       peerOptions // what prepare still has to do for them
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
	if cfg.AllowOther, err = allowOther(mo, euid); err != nil {
		return nil, err
	}
	cfg.Debug = v.debug || mo.debug
	if fs.Changed("trace") && v.trace == "" {
		return nil, usagef("--trace=: empty file name (--trace alone traces to stderr)")
	}
	traceDest := v.trace
	if !fs.Changed("trace") {
		traceDest = mo.peer.debugFile // unionfs-fuse's spelling of --trace=FILE
	}
	if o.trace, err = parseTrace(traceDest, v.tracePaths, v.traceOps); err != nil {
		return nil, err
	}
	o.peer = mo.peer
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
	overlay := mo.lowerdir != nil || mo.upperdir != ""
	var err error
	switch {
	case overlay && mo.peer.dirs != "":
		return usagef("-o dirs=%s: give the layers either as dirs= or as lowerdir=/upperdir=", mo.peer.dirs)
	case overlay && mo.peer.chroot != "":
		return usagef("-o chroot=%s: applies to branch lists, not to lowerdir=/upperdir=", mo.peer.chroot)
	case overlay:
		err = overlayLayers(cfg, mo, pos, mountpoint)
	case mo.peer.dirs != "":
		err = dirsLayers(cfg, mo.peer.dirs, pos, mountpoint)
	default:
		err = branchLayers(cfg, pos, mountpoint)
	}
	if err != nil {
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
