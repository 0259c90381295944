package main

import (
	"fmt"

	"github.com/distribution/reference"
	"github.com/spf13/pflag"
	"github.com/unionfsd/unionfsd/layers/registry"
)

var pushTLSVerify bool

func init() {
	register(&command{
		name:    "push",
		args:    "[--tls-verify=false] IMAGE [DESTINATION]",
		summary: "send a stored image to a registry (as DESTINATION, default its name)",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&pushTLSVerify, "tls-verify", true, "require HTTPS with a valid certificate (loopback registries are plain HTTP anyway)")
		},
		run: runPush,
	})
}

func runPush(g *globals, args []string) error {
	if len(args) != 1 && len(args) != 2 {
		return usagef("want IMAGE [DESTINATION], got %d arguments", len(args))
	}
	dest := args[len(args)-1]
	named, err := registry.ParseReference(dest)
	if err != nil {
		return err
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("push %s: %w: the destination must be a name with a tag, not a digest", dest, registry.ErrBadReference)
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	d, err := registry.Push(ctx, s, args[0], named, registry.Options{TLSVerify: pushTLSVerify, Progress: g.progress()})
	if err != nil {
		return err
	}
	// A reference that pulls exactly what was pushed.
	fmt.Fprintf(g.stdout, "%s@%s\n", named.Name(), d)
	return nil
}
