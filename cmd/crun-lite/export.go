package main

import (
	"github.com/spf13/pflag"
	"github.com/unionfsd/unionfsd/layers"
)

var exportOut, exportFormat string

func init() {
	register(&command{
		name:    "export",
		args:    "IMAGE -o FILE [--format docker-archive|oci|oci-dir]",
		summary: "write an image as a docker-save tarball or an OCI layout",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&exportOut, "output", "o", "", "output file (a directory for oci-dir)")
			fs.StringVar(&exportFormat, "format", string(layers.FormatDockerArchive), "docker-archive, oci (tar) or oci-dir")
		},
		run: runExport,
	})
}

func runExport(g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("want one IMAGE")
	}
	if exportOut == "" {
		return usagef("-o FILE is required")
	}
	format, err := layers.ParseFormat(exportFormat)
	if err != nil {
		return usagef("%v", err)
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	return s.Export(args[0], exportOut, format, layers.ExportOptions{Progress: g.progress()})
}
