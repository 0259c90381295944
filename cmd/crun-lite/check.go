package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"
	"github.com/unionfsd/unionfsd/layers"
	rt "github.com/unionfsd/unionfsd/runtime"
)

var checkRepair bool

func init() {
	register(&command{
		name:    "check",
		args:    "[--repair]",
		summary: "find (and with --repair remove) what interrupted commands left in the store",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&checkRepair, "repair", false, "remove what check finds that is safe to remove")
		},
		run: runCheck,
	})
}

// runCheck prints one line per problem; it fails while any is left.
func runCheck(g *globals, args []string) error {
	if len(args) != 0 {
		return usagef("check takes no arguments")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	var problems []layers.Problem
	dirs, err := rt.LeftoverContainerDirs(s.Root(), checkRepair)
	for _, d := range dirs {
		rel, _ := filepath.Rel(s.Root(), d)
		problems = append(problems, layers.Problem{Path: rel, What: "container dir without a record, left by an interrupted rm",
			Repairable: true, Repaired: checkRepair && err == nil})
	}
	if err != nil {
		return err
	}
	keep, err := rt.LayersInUse(s.Root())
	if err != nil {
		return err
	}
	found, err := s.Check(keep, checkRepair)
	problems = append(problems, found...)
	for _, p := range problems {
		fmt.Fprintln(g.stdout, p)
	}
	if err != nil {
		return err
	}
	left, repairable := 0, 0
	for _, p := range problems {
		if !p.Repaired {
			left++
			if p.Repairable {
				repairable++
			}
		}
	}
	switch {
	case left == 0:
		return nil
	case repairable > 0:
		return fmt.Errorf("store %s: %d problem(s); crun-lite check --repair fixes %d of them", s.Root(), left, repairable)
	}
	return fmt.Errorf("store %s: %d problem(s) that repair cannot fix", s.Root(), left)
}
