package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/registry"
	rt "github.com/unionfsd/unionfsd/runtime"
)

var pullTLSVerify bool

func init() {
	register(&command{
		name:    "pull",
		args:    "[--tls-verify=false] IMAGE[:TAG|@DIGEST]",
		summary: "download an image from a registry (busybox = docker.io/library/busybox:latest)",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&pullTLSVerify, "tls-verify", true, "require HTTPS with a valid certificate (loopback registries are plain HTTP anyway)")
		},
		run: runPull,
	})
}

// signalContext is cancelled by Ctrl-C or SIGTERM, so a transfer stops and
// cleans its staging up instead of dying half-way.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runPull(g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("want one IMAGE, got %d arguments", len(args))
	}
	named, err := registry.ParseReference(args[0])
	if err != nil {
		return err
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	unlock, err := s.LockShared() // keeps the staging dir safe from the import's tmp/ cleanup
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := signalContext()
	defer cancel()
	f, err := registry.Fetch(ctx, s, named, registry.Options{TLSVerify: pullTLSVerify, Progress: g.progress()})
	if err != nil {
		return err
	}
	defer layers.RemoveTempDir(f.Dir)
	if err := importFetched(g, s, f, named.String()); err != nil {
		return err
	}
	return s.AddRepoDigest(f.ID, f.RepoDigest)
}

// importFetched imports a downloaded layout as import does a file, in the
// user namespace of a rootless store when there is one, and prints the
// image as import does.
func importFetched(g *globals, s *layers.Store, f *registry.Fetched, ref string) error {
	if handled, err := rt.ImportMapped(s.Root(), f.Dir, ""); handled {
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		return nil
	}
	imgs, err := s.Import(f.Dir, layers.ImportOptions{Progress: g.progress(), Warn: g.warn, Where: ref})
	if err != nil {
		return err
	}
	for _, img := range imgs {
		fmt.Fprintf(g.stdout, "%s %s\n", img.ID, joinNames(img.Names))
	}
	return nil
}
