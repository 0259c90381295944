package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/distribution/reference"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/unionfsd/unionfsd/layers"
)

// Push sends the stored image src to the registry as dest, blobs and
// manifest byte for byte as stored, so the pushed manifest digest is the
// one the store records. It returns that digest.
func Push(ctx context.Context, s *layers.Store, src string, dest reference.Named, opts Options) (digest.Digest, error) {
	unlock, err := s.LockShared() // rmi must not collect blobs we are sending
	if err != nil {
		return "", err
	}
	defer unlock()
	img, err := s.Image(src)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", src, err)
	}
	ref, err := opts.nameRef(dest)
	if err != nil {
		return "", err
	}
	gimg, err := partial.CompressedToImage(&storedImage{s: s, img: img})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", src, err)
	}
	ro := opts.remoteOptions(ctx)
	var done chan struct{}
	if opts.Progress != nil {
		updates := make(chan ggcrv1.Update, 16)
		done = make(chan struct{})
		go showPushProgress(opts.Progress, "push "+dest.String(), updates, done)
		ro = append(ro, remote.WithProgress(updates))
	}
	err = remote.Write(ref, gimg, ro...)
	if done != nil {
		<-done // remote.Write closes the channel when it returns
	}
	if err != nil {
		return "", describe("push", dest, err)
	}
	return img.ManifestDigest, nil
}

// showPushProgress draws the byte count of the push on one bar.
func showPushProgress(p layers.Progress, label string, updates <-chan ggcrv1.Update, done chan<- struct{}) {
	defer close(done)
	var bar io.WriteCloser
	var shown, total int64
	for u := range updates {
		if bar == nil && u.Total > 0 {
			total = u.Total
			bar = p.Start(label, total)
		}
		// ggcr may raise Total as it goes (the manifest comes last); a bar's
		// total is fixed, so the count stops at the first one.
		if done := min(u.Complete, total); bar != nil && done > shown {
			bar.Write(make([]byte, done-shown))
			shown = done
		}
	}
	if bar != nil {
		bar.Close()
	}
}

// storedImage is a stored image as go-containerregistry sees it: the
// manifest and config as stored, layers read from the store's blobs.
type storedImage struct {
	s   *layers.Store
	img *layers.Image
}

func (i *storedImage) RawConfigFile() ([]byte, error) { return i.img.ConfigBytes, nil }
func (i *storedImage) RawManifest() ([]byte, error)   { return i.img.ManifestBytes, nil }

func (i *storedImage) MediaType() (types.MediaType, error) {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(i.img.ManifestBytes, &probe); err != nil {
		return "", err
	}
	if probe.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return types.MediaType(probe.MediaType), nil
}

func (i *storedImage) LayerByDigest(h ggcrv1.Hash) (partial.CompressedLayer, error) {
	d := digest.Digest(h.String())
	if d == i.img.ID {
		return &configLayer{h: h, data: i.img.ConfigBytes}, nil
	}
	for _, l := range i.img.Layers {
		if l.Digest == d {
			return &storedLayer{s: i.s, l: l}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no blob %s", i.img.ID, d)
}

// storedLayer is one layer blob of the store.
type storedLayer struct {
	s *layers.Store
	l layers.Layer
}

func (l *storedLayer) Digest() (ggcrv1.Hash, error) { return ggcrv1.NewHash(l.l.Digest.String()) }
func (l *storedLayer) Size() (int64, error)         { return l.l.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.l.MediaType), nil
}
func (l *storedLayer) Compressed() (io.ReadCloser, error) { return l.s.OpenBlob(l.l.Digest) }

// configLayer is the config blob.
type configLayer struct {
	h    ggcrv1.Hash
	data []byte
}

func (c *configLayer) Digest() (ggcrv1.Hash, error) { return c.h, nil }
func (c *configLayer) Size() (int64, error)         { return int64(len(c.data)), nil }
func (c *configLayer) MediaType() (types.MediaType, error) {
	return types.OCIConfigJSON, nil
}
func (c *configLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c.data)), nil
}
