package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/layers"
	rt "github.com/unionfsd/unionfsd/runtime"
)

var (
	commitUpper, commitFrom, commitMessage, commitAuthor, commitCompression string
	commitPause                                                             bool
)

func init() {
	register(&command{
		name:    "commit",
		args:    "CONTAINER NEW:TAG | --upper DIR --from IMAGE NEW:TAG",
		summary: "turn a container's (or any union's) upper dir into a new image layer",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&commitUpper, "upper", "", "upper dir of a union (OCI or kernel-overlay whiteouts)")
			fs.StringVar(&commitFrom, "from", "", "image the upper dir was mounted on")
			fs.StringVarP(&commitMessage, "message", "m", "", "history comment")
			fs.StringVarP(&commitAuthor, "author", "a", "", "author")
			fs.StringVar(&commitCompression, "compression", "gzip", "layer compression: gzip, zstd or none")
			fs.BoolVarP(&commitPause, "pause", "p", true, "pause a running container while its upper dir is read (cgroup freezer)")
		},
		run: runCommit,
	})
}

func runCommit(g *globals, args []string) (err error) {
	upper, from, name, err := commitTarget(g, args)
	if err != nil {
		return err
	}
	c, err := layers.ParseCompression(commitCompression)
	if err != nil {
		return usagef("%v", err)
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	var lowers []string
	if commitUpper == "" {
		// The layer dirs the container's union has above its image.
		if lowers, err = rt.InitLowers(s.Root(), args[0]); err != nil {
			return err
		}
	}
	if commitUpper == "" && commitPause {
		// A running container could change files while they are read,
		// giving a layer no moment of the container ever had.
		thaw, err := rt.Pause(s.Root(), args[0])
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, thaw()) }()
	}
	img, err := s.Commit(upper, from, name, layers.CommitOptions{
		Compression: c, CompressionSet: true, Comment: commitMessage, Author: commitAuthor,
		Progress: g.progress(), Warn: g.warn, Lowers: lowers,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s %s\n", img.ID, joinNames(img.Names))
	return nil
}

// commitTarget sorts out the two forms of the command line.
func commitTarget(g *globals, args []string) (upper, from, name string, err error) {
	if commitUpper != "" || commitFrom != "" {
		if commitUpper == "" || commitFrom == "" {
			return "", "", "", usagef("--upper and --from go together")
		}
		if len(args) != 1 {
			return "", "", "", usagef("with --upper, want one NEW:TAG")
		}
		return commitUpper, commitFrom, args[0], nil
	}
	if len(args) != 2 {
		return "", "", "", usagef("want CONTAINER NEW:TAG")
	}
	s, err := g.store()
	if err != nil {
		return "", "", "", err
	}
	upper, from, err = rt.UpperAndImage(s.Root(), args[0])
	return upper, from, args[1], err
}
