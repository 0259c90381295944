package main

import "fmt"

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
	for _, ref := range args {
		res, err := s.Remove(ref)
		if err != nil {
			return err
		}
		for _, n := range res.Untagged {
			fmt.Fprintf(g.stdout, "Untagged: %s\n", n)
		}
		if res.Deleted != "" {
			fmt.Fprintf(g.stdout, "Deleted: %s\n", res.Deleted)
		}
		for _, l := range res.DeletedLayers {
			fmt.Fprintf(g.stdout, "Deleted layer: %s\n", l)
		}
	}
	return nil
}
