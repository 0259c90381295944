package main

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/unionfsd/unionfsd/layers/registry"
)

func init() {
	register(&command{
		name:    "tag",
		args:    "IMAGE NAME[:TAG]",
		summary: "give a stored image another name",
		run:     runTag,
	})
}

func runTag(g *globals, args []string) error {
	if len(args) != 2 {
		return usagef("want IMAGE NAME[:TAG], got %d arguments", len(args))
	}
	// Checked as docker checks a name; stored as written, like import --name.
	named, err := registry.ParseReference(args[1])
	if err != nil {
		return err
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("tag %s: %w: a name cannot hold a digest", args[1], registry.ErrBadReference)
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	if _, err := s.Tag(args[0], strings.TrimPrefix(args[1], "docker://")); err != nil {
		return fmt.Errorf("tag %s: %w", args[0], err)
	}
	return nil
}
