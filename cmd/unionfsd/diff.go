package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/unionfs"
)

const diffHelp = `unionfsd diff - list what a union's upper dir changes, like docker diff

Usage:
  unionfsd diff [--tar FILE] MOUNTPOINT
  unionfsd diff [--tar FILE] [--lowers L1:L2] UPPERDIR

One line per change, sorted by path:
  A /path   added: no lower layer has it
  C /path   changed: the upper's copy replaces a lower one (contents,
            metadata, or for a dir: something inside it changed)
  D /path   deleted: a whiteout hides it
  O /path   opaque: a dir that replaced the lower one; nothing from the
            lower layers shows under it (the entries under it are A)
For a MOUNTPOINT the layers come from unionfsd's record of the mount (or a
kernel overlay mount's options). For an UPPERDIR, give the lowers to tell
changed from added; without them every entry shows as A.

Flags:
      --tar FILE        also write the changes as an OCI layer tar ("-" for
                        stdout, then no list is printed)
      --lowers L1:L2    the lower dirs, top first (with an UPPERDIR)
`

func init() { subcommands["diff"] = diffCommand }

func diffCommand(args []string) int {
	var tarOut, lowers string
	var help bool
	fs := newSubFlagSet("diff", &help)
	fs.StringVar(&tarOut, "tar", "", "write an OCI layer tar")
	fs.StringVar(&lowers, "lowers", "", "lower dirs, top first")
	if err := fs.Parse(args); err != nil {
		return printError(usagef("diff: %v", err))
	}
	if help {
		fmt.Print(diffHelp)
		return exitOK
	}
	if fs.NArg() != 1 {
		return printError(usagef("diff: want one MOUNTPOINT or UPPERDIR (see unionfsd diff --help)"))
	}
	cfg, err := diffTarget(fs.Arg(0), lowers)
	if err != nil {
		return printError(err)
	}
	changes, err := inspect.Changes(cfg)
	if err != nil {
		return printError(err)
	}
	if tarOut != "" {
		if err := writeDiffTar(cfg.Upper, cfg.Lowers, tarOut); err != nil {
			return printError(err)
		}
		if tarOut == "-" {
			return exitOK
		}
	}
	for _, c := range changes {
		fmt.Println(c)
	}
	return exitOK
}

// diffTarget finds the upper and lowers for arg: a mountpoint with known
// layers, else an upper dir.
func diffTarget(arg, lowers string) (unionfs.Config, error) {
	dir, err := checkMountDir(arg)
	if err != nil {
		return unionfs.Config{}, err
	}
	cfg, err := inspect.LayersOf(dir)
	switch {
	case err == nil && lowers != "":
		return cfg, usagef("diff: --lowers is for an UPPERDIR; %s is a mount with known layers", dir)
	case err == nil && cfg.Upper == "":
		return cfg, fmt.Errorf("%s: read-only union: it has no upper dir, so no changes", dir)
	case err == nil:
		return cfg, nil
	case !errors.Is(err, inspect.ErrNoRecord):
		return cfg, err
	}
	if err := notAUnion(dir); err != nil {
		return cfg, err
	}
	cfg = unionfs.Config{Upper: dir}
	if lowers != "" {
		lf := layerFlags{lowers: lowers}
		c, err := lf.config()
		cfg.Lowers = c.Lowers
		return cfg, err
	}
	if r, ok := inspect.RecordForUpper(dir); ok {
		cfg.Lowers, cfg.Work = r.Lowers, r.Work
		return cfg, nil
	}
	fmt.Fprintf(os.Stderr, "unionfsd: warning: %s: no lower layers known, so every entry shows as A; "+
		"give --lowers to tell changed from added\n", dir)
	return cfg, nil
}

// writeDiffTar writes the upper as an OCI layer tar to out ("-" is
// stdout). A file appears whole or not at all: it is written under a temp
// name and renamed. Metadata-only copies take their data from lowers.
func writeDiffTar(upper string, lowers []string, out string) error {
	if out == "-" {
		return layers.WriteDiffTar(upper, lowers, os.Stdout)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(abs), ".unionfsd-diff-*.tar")
	if err != nil {
		return fmt.Errorf("%s: %w", out, unwrapPath(err))
	}
	err = layers.WriteDiffTar(upper, lowers, tmp)
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), abs)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("%s: %w", out, unwrapPath(err))
	}
	return nil
}

// notAUnion rejects a union mount, or a dir inside a unionfsd mount, where
// an upper dir is wanted: its merged view would read as a huge changeset,
// and a repair would work on the union instead of its layers. (Only
// unionfsd mounts count above dir: in a container, "/" itself is often an
// overlay mount.)
func notAUnion(dir string) error {
	if cfg, err := inspect.LayersOf(dir); err == nil {
		return fmt.Errorf("%s: a union mount, not an upper dir (its upper is %q)", dir, cfg.Upper)
	}
	if r, ok := inspect.RecordContaining(dir); ok {
		return fmt.Errorf("%s: inside the union mounted at %s, not an upper dir (its upper is %s)", dir, r.Mountpoint, r.Upper)
	}
	return nil
}
