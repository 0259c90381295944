package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"github.com/unionfsd/unionfsd/layers"
	rt "github.com/unionfsd/unionfsd/runtime"
)

var importName string

func init() {
	register(&command{
		name:    "import",
		args:    "FILE|DIR|- [--name NAME:TAG]",
		summary: "import a docker-save tarball or an OCI layout (dir or tar)",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&importName, "name", "", "name the image NAME:TAG (single-image archives only)")
		},
		run: runImport,
	})
}

func runImport(g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("want one FILE or DIR, got %d arguments", len(args))
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	if args[0] == "-" {
		return importStdin(g, s)
	}
	// Rootless: import where the layers keep the image's owners.
	if handled, err := rt.ImportMapped(s.Root(), args[0], importName); handled {
		return err
	}
	imgs, err := s.Import(args[0], layers.ImportOptions{Name: importName, Progress: g.progress(), Warn: g.warn})
	if err != nil {
		return err
	}
	for _, img := range imgs {
		fmt.Fprintf(g.stdout, "%s %s\n", img.ID, joinNames(img.Names))
	}
	return nil
}
