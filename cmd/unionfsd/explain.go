package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/unionfs"
)

const explainHelp = `unionfsd explain - show a path's stack through every layer of a union

Usage:
  unionfsd explain [--json] MOUNTPOINT PATH
  unionfsd explain [--json] MOUNTPOINT/PATH
  unionfsd explain [--json] --layers UPPER:LOWER[:LOWER...] PATH
  unionfsd explain [--json] [--upper UPPER] --lowers LOWER[:LOWER...] PATH

For every layer (0 is the upper of a writable union, lowers follow top first)
it shows what the layer holds at PATH (a file, a dir, a whiteout, an opaque
dir, a metacopy entry), whether that layer answers, merges, is shadowed or
hidden, and why. The layers of a MOUNTPOINT come from the record unionfsd
keeps while it serves the mount, or from a kernel overlay mount's options.
--layers takes the branch list of the mount command (first branch is the
upper unless marked =RO). It reads the layer dirs only; nothing is changed.

Flags:
      --layers BRANCHES   the union's layers, as on the unionfsd command line
      --upper DIR         the upper dir (with --lowers)
      --lowers L1:L2      the lower dirs, top first
      --json              print the explanation as JSON
`

func init() { subcommands["explain"] = explainCommand }

// layerFlags are the ways to name a union's layers without a mount.
type layerFlags struct {
	layers, upper, lowers string
}

func (lf *layerFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&lf.layers, "layers", "", "branch list, top first")
	fs.StringVar(&lf.upper, "upper", "", "upper dir")
	fs.StringVar(&lf.lowers, "lowers", "", "lower dirs, top first")
}

// given reports whether any layer flag was used.
func (lf *layerFlags) given() bool { return lf.layers != "" || lf.upper != "" || lf.lowers != "" }

// config turns the flags into a union config.
func (lf *layerFlags) config() (unionfs.Config, error) {
	var cfg unionfs.Config
	if lf.layers != "" {
		if lf.upper != "" || lf.lowers != "" {
			return cfg, usagef("--layers replaces --upper and --lowers: give one or the other")
		}
		upper, lowers, err := parseBranches(lf.layers)
		if err != nil {
			return cfg, err
		}
		cfg.Upper, cfg.Lowers = upper, lowers
		return cfg, nil
	}
	if lf.lowers == "" {
		return cfg, usagef("--upper needs --lowers (or use --layers)")
	}
	cfg.Upper = lf.upper
	for _, l := range splitList(lf.lowers, ':') {
		if l == "" {
			return cfg, usagef("--lowers %s: empty layer path in the list", lf.lowers)
		}
		cfg.Lowers = append(cfg.Lowers, l)
	}
	return cfg, nil
}

// newSubFlagSet makes a quiet flag set with -h/--help.
func newSubFlagSet(name string, help *bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet("unionfsd "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVarP(help, "help", "h", false, "show help")
	return fs
}

func explainCommand(args []string) int {
	var lf layerFlags
	var asJSON, help bool
	fs := newSubFlagSet("explain", &help)
	lf.add(fs)
	fs.BoolVar(&asJSON, "json", false, "JSON output")
	if err := fs.Parse(args); err != nil {
		return printError(usagef("explain: %v", err))
	}
	if help {
		fmt.Print(explainHelp)
		return exitOK
	}
	cfg, where, p, err := explainTarget(&lf, fs.Args())
	if err != nil {
		return printError(err)
	}
	e, err := unionfs.Explain(cfg, p)
	if err != nil {
		return printError(err)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(e)
		return exitOK
	}
	inspect.WriteExplanation(os.Stdout, e, where)
	return exitOK
}

// explainTarget sorts out the forms of the command line: the layers, where
// they come from (for the heading) and the path inside the union.
func explainTarget(lf *layerFlags, pos []string) (cfg unionfs.Config, where, p string, err error) {
	if lf.given() {
		if len(pos) != 1 {
			return cfg, "", "", usagef("explain: with layer flags, want one PATH (got %d arguments)", len(pos))
		}
		cfg, err = lf.config()
		return cfg, "", pos[0], err
	}
	switch len(pos) {
	case 1:
		cfg, mnt, inner, err := inspect.FindMount(pos[0])
		if err != nil {
			return cfg, "", "", noLayersError(err)
		}
		return cfg, mnt, inner, nil
	case 2:
		mnt, err := checkMountDir(pos[0])
		if err != nil {
			return cfg, "", "", err
		}
		cfg, err = inspect.LayersOf(mnt)
		if err != nil {
			return cfg, "", "", noLayersError(err)
		}
		return cfg, mnt, pos[1], nil
	}
	return cfg, "", "", usagef("explain: want MOUNTPOINT PATH, MOUNTPOINT/PATH or --layers ... PATH (see unionfsd explain --help)")
}

// checkMountDir resolves a MOUNTPOINT argument.
func checkMountDir(mnt string) (string, error) {
	st, err := os.Stat(mnt)
	if err != nil {
		return "", fmt.Errorf("%s: %w", mnt, unwrapPath(err))
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s: not a directory (want a MOUNTPOINT)", mnt)
	}
	return realPath(mnt)
}

// realPath is the absolute, symlink-free form of an existing path.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, unwrapPath(err))
	}
	return abs, nil
}

// noLayersError adds the way out to "no record" errors.
func noLayersError(err error) error {
	if errors.Is(err, inspect.ErrNoRecord) {
		return fmt.Errorf("%v; is it mounted by unionfsd? otherwise give the layers with --layers UPPER:LOWER...", err)
	}
	return err
}
