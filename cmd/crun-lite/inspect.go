package main

import (
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/unionfsd/unionfsd/layers"
)

func init() {
	register(&command{
		name:    "inspect",
		args:    "IMAGE",
		summary: "print an image's config, layers, history and sizes as JSON",
		run:     runInspect,
	})
}

// inspectOutput is what inspect prints.
type inspectOutput struct {
	ID             digest.Digest  `json:"id"`
	ManifestDigest digest.Digest  `json:"manifestDigest"`
	Names          []string       `json:"names"`
	Added          string         `json:"added"`
	Size           int64          `json:"size"`
	CompressedSize int64          `json:"compressedSize"`
	Layers         []inspectLayer `json:"layers"`
	Config         v1.Image       `json:"config"`
}

type inspectLayer struct {
	layers.Layer
	Dir string `json:"dir"`
}

func runInspect(g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("want one IMAGE")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	img, err := s.Image(args[0])
	if err != nil {
		return err
	}
	out := inspectOutput{ID: img.ID, ManifestDigest: img.ManifestDigest, Names: img.Names,
		Added: img.Added.Format("2006-01-02T15:04:05Z07:00"), Size: img.Size(), Config: img.Config}
	if out.Names == nil {
		out.Names = []string{}
	}
	for _, l := range img.Layers {
		out.CompressedSize += l.Size
		out.Layers = append(out.Layers, inspectLayer{Layer: l, Dir: s.LayerDir(l.ChainID)})
	}
	return printJSON(g, out)
}
