package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/internal/units"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/unionfs"
)

var explainJSON bool

func init() {
	register(&command{
		name:    "explain",
		args:    "IMAGE [PATH]",
		summary: "show an image's layers, or which layer gives PATH and which hide it",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&explainJSON, "json", false, "print JSON")
		},
		run: runExplain,
	})
}

// explainedLayer is one row of `crun-lite explain IMAGE`: a layer of the
// image, top first, numbered as the rows of `explain IMAGE PATH` are.
type explainedLayer struct {
	Layer     int    `json:"layer"`
	DiffID    string `json:"diffID"`
	Size      int64  `json:"size"` // uncompressed
	CreatedBy string `json:"createdBy,omitempty"`
	Dir       string `json:"dir"`
}

func runExplain(g *globals, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("want IMAGE [PATH]")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	img, err := s.Image(args[0])
	if err != nil {
		return err
	}
	if len(args) == 2 {
		return explainPath(g, s, img, args[0], args[1])
	}
	rows := explainLayers(s, img)
	if explainJSON {
		return printJSON(g, rows)
	}
	fmt.Fprintf(g.stdout, "image %s (%s), %d layers, top first\n", args[0], img.ID.Encoded()[:12], len(rows))
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  layer\tdiff_id\tsize\tcreated_by")
	for _, r := range rows {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", r.Layer, shortDigest(r.DiffID), units.Bytes(r.Size), oneLineCmd(r.CreatedBy))
	}
	return tw.Flush()
}

// explainLayers lists img's layers top first, each with the history line
// that made it (the history entries that are not empty layers, in order).
func explainLayers(s *layers.Store, img *layers.Image) []explainedLayer {
	var made []string
	for _, h := range img.Config.History {
		if !h.EmptyLayer {
			made = append(made, h.CreatedBy)
		}
	}
	if len(made) != len(img.Layers) {
		made = nil // a history that does not match the layers says nothing
	}
	rows := make([]explainedLayer, 0, len(img.Layers))
	for i := len(img.Layers) - 1; i >= 0; i-- {
		l := img.Layers[i]
		r := explainedLayer{Layer: len(rows), DiffID: l.DiffID.String(), Size: l.UncompressedSize, Dir: s.LayerDir(l.ChainID)}
		if made != nil {
			r.CreatedBy = made[i]
		}
		rows = append(rows, r)
	}
	return rows
}

// explainPath tells for PATH which layer of the image answers, and which
// layers hold it, white it out or make a dir above it opaque: the table of
// `unionfsd explain`, over the image's layer dirs as a read-only union.
func explainPath(g *globals, s *layers.Store, img *layers.Image, ref, p string) error {
	e, err := unionfs.Explain(unionfs.Config{Lowers: s.LayerDirs(img)}, p)
	if err != nil {
		return err
	}
	if explainJSON {
		return printJSON(g, e)
	}
	inspect.WriteExplanation(g.stdout, e, "image "+ref)
	return nil
}

func printJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shortDigest is algorithm:first 12 hex digits.
func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// oneLineCmd shortens a history line for a table: docker's "/bin/sh -c
// #(nop) " prefix goes, and long lines are cut.
func oneLineCmd(s string) string {
	s = strings.TrimPrefix(s, "/bin/sh -c #(nop) ")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
