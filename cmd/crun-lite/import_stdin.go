package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/unionfsd/unionfsd/layers"
	rt "github.com/unionfsd/unionfsd/runtime"
	"golang.org/x/term"
)

// importStdin imports the archive read from standard input ("import -"),
// such as skopeo copy ... docker-archive:/dev/stdout writes into a pipe.
func importStdin(g *globals, s *layers.Store) error {
	if term.IsTerminal(int(os.Stdin.Fd())) {
		return errors.New("import -: standard input is a terminal, not an archive (pipe one in, or give a FILE)")
	}
	opts := layers.ImportOptions{Name: importName, Progress: g.progress(), Warn: g.warn}
	var imgs []*layers.Image
	var err error
	if os.Geteuid() == 0 {
		imgs, err = s.ImportReader(os.Stdin, "stdin", opts)
	} else {
		// The rootless import runs in a user namespace, from a file.
		unlock, lerr := s.LockShared() // keeps the spool safe from the import's tmp/ cleanup
		if lerr != nil {
			return lerr
		}
		defer unlock()
		dir, path, serr := s.Spool(os.Stdin, "stdin")
		if serr != nil {
			return serr
		}
		defer layers.RemoveTempDir(dir)
		if handled, err := rt.ImportMapped(s.Root(), path, importName); handled {
			return err
		}
		imgs, err = s.Import(path, opts)
	}
	if err != nil {
		return err
	}
	for _, img := range imgs {
		fmt.Fprintf(g.stdout, "%s %s\n", img.ID, joinNames(img.Names))
	}
	return nil
}
