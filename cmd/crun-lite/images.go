package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/internal/units"
)

var imagesIDs, imagesQuiet, imagesNoTrunc bool

func init() {
	register(&command{
		name:    "images",
		args:    "",
		summary: "list stored images",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&imagesIDs, "ids", false, "print only the full image IDs (sha256:...)")
			fs.BoolVarP(&imagesQuiet, "quiet", "q", false, "print only the IDs of the table, one per line (as docker images -q)")
			fs.BoolVar(&imagesNoTrunc, "no-trunc", false, "print full IDs")
		},
		run: runImages,
	})
}

func runImages(g *globals, args []string) error {
	if len(args) != 0 {
		return usagef("takes no arguments")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	imgs, err := s.Images()
	if err != nil {
		return err
	}
	if imagesIDs {
		for _, img := range imgs {
			fmt.Fprintln(g.stdout, img.ID)
		}
		return nil
	}
	if imagesQuiet {
		for _, img := range imgs {
			fmt.Fprintln(g.stdout, shortID(img.ID.Encoded(), imagesNoTrunc))
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTAG\tIMAGE ID\tLAYERS\tCREATED\tSIZE")
	for _, img := range imgs {
		id := shortID(img.ID.Encoded(), imagesNoTrunc)
		names := img.Names
		if len(names) == 0 {
			names = []string{"<none>:<none>"}
		}
		created := "-"
		if img.Config.Created != nil {
			created = img.Config.Created.UTC().Format(time.RFC3339)
		}
		for _, n := range names {
			i := strings.LastIndex(n, ":")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", n[:i], n[i+1:], id, len(img.Layers), created, units.Bytes(img.Size()))
		}
	}
	return tw.Flush()
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "<none>"
	}
	return strings.Join(names, ",")
}

// shortID is an ID as docker's tables show it: 12 hex digits, or all of
// them with --no-trunc.
func shortID(id string, noTrunc bool) string {
	if noTrunc {
		return id
	}
	return id[:min(12, len(id))]
}
