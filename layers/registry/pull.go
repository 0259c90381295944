package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/distribution/reference"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unionfsd/unionfsd/layers"
)

// maxConfigSize bounds the config blob read into memory, as Import bounds
// the JSON documents of an archive.
const maxConfigSize = 32 << 20

// Fetched is an image downloaded by Fetch, waiting in Dir to be imported.
type Fetched struct {
	Dir        string        // OCI image layout in the store's staging area; remove with layers.RemoveTempDir
	Name       string        // REPO:TAG the image gets; "" for a pull by digest
	RepoDigest string        // REPO@DIGEST of what the reference named (index or manifest)
	ID         digest.Digest // the image ID (config digest) the registry promised
}

// Fetch downloads the image r names, resolving a multi-arch index to this
// machine's platform, into an OCI layout under the store's staging area.
// Layer blobs the store already has are hard-linked, not downloaded. The
// layout is meant for Store.Import, which verifies every digest and diff ID.
// Hold Store.LockShared from before Fetch until the import is done.
func Fetch(ctx context.Context, s *layers.Store, r reference.Named, opts Options) (*Fetched, error) {
	ref, err := opts.nameRef(r)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, opts.remoteOptions(ctx)...)
	if err != nil {
		return nil, describe("pull", r, err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, describe("pull", r, err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return nil, describe("pull", r, err)
	}
	if manifest.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("pull %s: config of %d bytes is too large", r, manifest.Config.Size)
	}
	dir, err := s.TempDir("pull")
	if err != nil {
		return nil, err
	}
	f := &Fetched{Dir: dir, ID: digest.Digest(manifest.Config.Digest.String()),
		RepoDigest: r.Name() + "@" + desc.Digest.String()}
	if t, ok := r.(reference.Tagged); ok {
		f.Name = r.Name() + ":" + t.Tag()
	}
	if err := writeLayout(s, img, manifest, f, opts.Progress); err != nil {
		layers.RemoveTempDir(dir)
		return nil, describe("pull", r, err)
	}
	return f, nil
}

// writeLayout writes oci-layout, index.json and the blobs of img into f.Dir.
func writeLayout(s *layers.Store, img ggcrv1.Image, manifest *ggcrv1.Manifest, f *Fetched, progress layers.Progress) error {
	blobs := filepath.Join(f.Dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		return err
	}
	for _, l := range manifest.Layers {
		if err := fetchLayer(s, img, l, blobs, progress); err != nil {
			return err
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	md := digest.FromBytes(raw)
	for d, data := range map[digest.Digest][]byte{f.ID: cfg, md: raw} {
		if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
			return fmt.Errorf("unsupported digest %q", d)
		}
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), data, 0o600); err != nil {
			return err
		}
	}
	desc := v1.Descriptor{MediaType: string(mt), Digest: md, Size: int64(len(raw))}
	if f.Name != "" {
		desc.Annotations = map[string]string{"io.containerd.image.name": f.Name}
	}
	index, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{desc}})
	layout, _ := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err := os.WriteFile(filepath.Join(f.Dir, v1.ImageLayoutFile), layout, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.Dir, v1.ImageIndexFile), index, 0o600)
}

// fetchLayer puts one layer blob into the layout: a hard link to the
// store's copy when there is one, else a download.
func fetchLayer(s *layers.Store, img ggcrv1.Image, l ggcrv1.Descriptor, blobs string, progress layers.Progress) error {
	d := digest.Digest(l.Digest.String())
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("layer %q: unsupported digest", l.Digest)
	}
	dst := filepath.Join(blobs, d.Encoded())
	if fileExists(dst) { // the same blob twice in one manifest
		return nil
	}
	if ok, err := s.LinkBlob(d, dst); ok || err != nil {
		return err
	}
	layer, err := img.LayerByDigest(l.Digest)
	if err != nil {
		return err
	}
	// The reader checks size and digest at its end; Import checks again.
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dst+".part", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(dst + ".part")
	var w io.Writer = out
	if progress != nil {
		bar := progress.Start("pull "+d.Encoded()[:12], l.Size)
		defer bar.Close()
		w = io.MultiWriter(out, bar)
	}
	_, err = io.Copy(w, rc)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	return os.Rename(dst+".part", dst)
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
