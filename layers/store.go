// Package layers imports container images from files on disk (docker-save
// tarballs and OCI image layouts), verifies every digest, extracts each layer
// once into a directory keyed by its chain ID, and exports and commits images.
//
// Store layout under the root:
//
//	blobs/sha256/<hex>       content-addressed blobs (configs, manifests, layers as imported)
//	layers/<chain-hex>/diff  the extracted layer, .wh. whiteouts kept as files
//	layers/<chain-hex>/layer.json
//	images.json              the image index: IDs, names, layer records
//	tmp/                     staging; everything is built here and renamed into place
//	gc.lock, index.lock      flock files (see lock.go)
//
// Nothing ever writes into layers/*/diff after the rename that publishes it.
package layers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrImageNotFound is returned (wrapped) when a reference matches no image.
var ErrImageNotFound = errors.New("image not found")

// Store is an image store rooted at one directory.
type Store struct {
	root string
}

// DefaultRoot is /var/lib/crun-lite for root, $XDG_DATA_HOME/crun-lite
// (~/.local/share/crun-lite) for everyone else.
func DefaultRoot() string {
	if os.Geteuid() == 0 {
		return "/var/lib/crun-lite"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "crun-lite")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "crun-lite-"+fmt.Sprint(os.Geteuid()))
	}
	return filepath.Join(home, ".local", "share", "crun-lite")
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}
	return &Store{root: abs}, nil
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", string(d.Algorithm()), d.Encoded())
}

func (s *Store) layerPath(chain digest.Digest) string {
	return filepath.Join(s.root, "layers", chain.Encoded())
}

func (s *Store) indexPath() string { return filepath.Join(s.root, "images.json") }

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

// Layer describes one layer of an image as stored.
type Layer struct {
	Digest           digest.Digest `json:"digest"`    // blob digest (as compressed)
	MediaType        string        `json:"mediaType"` // blob media type
	Size             int64         `json:"size"`      // blob size
	DiffID           digest.Digest `json:"diffID"`    // digest of the uncompressed tar
	ChainID          digest.Digest `json:"chainID"`
	UncompressedSize int64         `json:"uncompressedSize"`
}

// imageRecord is one entry of images.json.
type imageRecord struct {
	ID       digest.Digest `json:"id"` // config digest
	Manifest digest.Digest `json:"manifest"`
	Names    []string      `json:"names,omitempty"`
	// RepoDigests are the REPO@DIGEST references the image was pulled by.
	RepoDigests []string  `json:"repoDigests,omitempty"`
	Added       time.Time `json:"added"`
	Layers      []Layer   `json:"layers"`
}

type index struct {
	Images []*imageRecord `json:"images"`
}

// Image is a stored image with its parsed config and manifest.
type Image struct {
	ID             digest.Digest
	ManifestDigest digest.Digest
	Names          []string
	RepoDigests    []string
	Added          time.Time
	Layers         []Layer // base first
	Config         v1.Image
	Manifest       v1.Manifest
	ConfigBytes    []byte
	ManifestBytes  []byte
}

// Size is the sum of the layers' uncompressed sizes.
func (img *Image) Size() int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.UncompressedSize
	}
	return n
}

// readIndex loads images.json; a missing file is an empty store.
func (s *Store) readIndex() (*index, error) {
	data, err := os.ReadFile(s.indexPath())
	if errors.Is(err, os.ErrNotExist) {
		return &index{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("read image index %s: %w", s.indexPath(), err)
	}
	return &idx, nil
}

// writeIndex replaces images.json atomically. Callers hold the index lock.
func (s *Store) writeIndex(idx *index) error {
	sort.Slice(idx.Images, func(i, j int) bool { return idx.Images[i].Added.Before(idx.Images[j].Added) })
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.indexPath(), data, 0o600)
}

// writeFileAtomic writes data to a temp file beside path, fsyncs and renames it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Images lists all images, oldest first.
func (s *Store) Images() ([]*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(idx.Images))
	for _, rec := range idx.Images {
		img, err := s.loadImage(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// Image finds the image a reference names: NAME[:TAG] (TAG defaults to
// latest), a full config digest "sha256:HEX", or a unique ID prefix of at
// least 4 hex digits.
func (s *Store) Image(ref string) (*Image, error) {
	_, rec, err := s.findRecord(ref)
	if err != nil {
		return nil, err
	}
	return s.loadImage(rec)
}

// findRecord reads the index and finds the record of the image ref names
// (see Image for the forms of ref).
func (s *Store) findRecord(ref string) (*index, *imageRecord, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, nil, err
	}
	rec, err := idx.find(ref)
	if err != nil {
		return nil, nil, err
	}
	return idx, rec, nil
}

// loadImage reads the config and manifest blobs of rec.
func (s *Store) loadImage(rec *imageRecord) (*Image, error) {
	img := &Image{ID: rec.ID, ManifestDigest: rec.Manifest, Names: append([]string(nil), rec.Names...),
		RepoDigests: append([]string(nil), rec.RepoDigests...), Added: rec.Added, Layers: append([]Layer(nil), rec.Layers...)}
	var err error
	if img.ConfigBytes, err = os.ReadFile(s.blobPath(rec.ID)); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", rec.ID, err)
	}
	if err := json.Unmarshal(img.ConfigBytes, &img.Config); err != nil {
		return nil, fmt.Errorf("image %s: config %s: %w", rec.ID, s.blobPath(rec.ID), err)
	}
	if img.ManifestBytes, err = os.ReadFile(s.blobPath(rec.Manifest)); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", rec.ID, err)
	}
	if err := json.Unmarshal(img.ManifestBytes, &img.Manifest); err != nil {
		return nil, fmt.Errorf("image %s: manifest %s: %w", rec.ID, s.blobPath(rec.Manifest), err)
	}
	return img, nil
}

// LayerDirs returns the extracted layer directories of img, topmost first,
// the order unionfs.Config.Lowers wants.
func (s *Store) LayerDirs(img *Image) []string {
	dirs := make([]string, 0, len(img.Layers))
	for i := len(img.Layers) - 1; i >= 0; i-- {
		dirs = append(dirs, s.LayerDir(img.Layers[i].ChainID))
	}
	return dirs
}

// LayerDir is the extracted content directory of the layer with this chain ID.
func (s *Store) LayerDir(chain digest.Digest) string {
	return filepath.Join(s.layerPath(chain), "diff")
}

// ChainIDs computes the chain IDs of a stack of diff IDs (base first):
// chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
