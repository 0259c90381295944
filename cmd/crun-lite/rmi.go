package main

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/unionfsd/unionfsd/layers"
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
	inUse, err := rt.ImagesInUse(s.Root())
	if err != nil {
		return err
	}
	for _, ref := range args {
		if err := refuseInUse(s, ref, inUse); err != nil {
			return err
		}
	}
	// Rootless: layers hold files of the image's other users, stored as
	// subordinate ids; only the user namespace that made them can delete them.
	if handled, err := rt.RemoveImagesMapped(s.Root(), args); handled {
		return err
	}
	for _, ref := range args {
		res, err := s.Remove(ref)
		if err != nil {
			return err
		}
		for _, l := range res.Lines() {
			fmt.Fprintln(g.stdout, l)
		}
	}
	return nil
}

// idRef matches references by image ID (sha256:HEX or a hex prefix).
var idRef = regexp.MustCompile(`^(sha256:)?[0-9a-f]{4,64}$`)

// refuseInUse stops rmi from deleting an image whose layers containers still
// use: their unions would lose their lower layers. Removing one of several
// names leaves the image, so that is allowed.
func refuseInUse(s *layers.Store, ref string, inUse map[string][]string) error {
	img, err := s.Image(ref)
	if err != nil {
		return err
	}
	users := inUse[img.ID.String()]
	if len(users) == 0 || len(img.Names) > 1 && !idRef.MatchString(ref) {
		return nil
	}
	sort.Strings(users)
	return fmt.Errorf("image %s is used by container(s) %s: remove them first (crun-lite rm)", ref, strings.Join(users, ", "))
}
