package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	rt "github.com/unionfsd/unionfsd/runtime"
)

var rmForce bool

func init() {
	register(&command{
		name:    "rm",
		args:    "[-f] CONTAINER...",
		summary: "remove containers and their upper dirs",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&rmForce, "force", "f", false, "kill a running container first")
		},
		run: runRm,
	})
}

func runRm(g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("want at least one CONTAINER")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range args {
		if err := rt.Remove(s.Root(), name, rmForce); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(g.stdout, name)
	}
	return errors.Join(errs...)
}
