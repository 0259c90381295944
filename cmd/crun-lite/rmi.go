package main

import (
	"fmt"
	"sort"
	"strings"

	rt "github.com/unionfsd/unionfsd/runtime"
)

func init() {
	register(&command{
		name:    "rmi",
		args:    "IMAGE...",
		summary: "remove images (or one of their names) and the layers nothing else uses",
		run:     runRmi,
	})
}

func runRmi(g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("want at least one IMAGE")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	// All arguments are resolved before anything is removed: the names of
	// one image given together delete it, as its ID does.
	plan, err := s.PlanRemoval(args)
	if err != nil {
		return err
	}
	inUse, err := rt.ImagesInUse(s.Root())
	if err != nil {
		return err
	}
	for _, r := range plan {
		if users := inUse[r.ID.String()]; r.Deleted && len(users) > 0 {
			sort.Strings(users)
			return fmt.Errorf("image %s is used by container(s) %s: remove them first (crun-lite rm)",
				strings.Join(r.Refs, ", "), strings.Join(users, ", "))
		}
	}
	// Rootless: layers hold files of the image's other users, stored as
	// subordinate ids; only the user namespace that made them can delete them.
	if handled, err := rt.RemoveImagesMapped(s.Root(), args); handled {
		return err
	}
	keep, err := rt.LayersInUse(s.Root())
	if err != nil {
		return err
	}
	for _, ref := range args {
		res, err := s.RemoveKeeping(ref, keep)
		if err != nil {
			return err
		}
		for _, l := range res.Lines() {
			fmt.Fprintln(g.stdout, l)
		}
	}
	return nil
}
