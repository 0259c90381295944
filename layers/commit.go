package layers

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// CommitOptions tunes Commit.
type CommitOptions struct {
	// Compression of the new layer blob; gzip unless set.
	Compression Compression
	// CompressionSet tells an explicit Uncompressed from the zero value.
	CompressionSet bool
	// CreatedBy and Comment go into the history entry.
	CreatedBy string
	Comment   string
	Author    string
	Progress  Progress
	Warn      func(msg string)
	// Now overrides the creation time (for reproducible tests).
	Now time.Time
	// Lowers are layer dirs the union had above the base image's layers
	// (a container's init dir), topmost first: metadata-only copies in the
	// upper may keep their data there.
	Lowers []string
}

// Commit turns upper (a union's upper dir) into a new layer on top of the
// image from, and stores the result as newName. The layer goes through the
// same verification and extraction as an import.
func (s *Store) Commit(upper, from, newName string, opts CommitOptions) (*Image, error) {
	name, err := NormalizeName(newName)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if st, err := os.Stat(upper); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("commit: upper %s: not a directory", upper)
	}
	gc, err := s.lockShared()
	if err != nil {
		return nil, err
	}
	defer gc.unlock()
	base, err := s.Image(from)
	if err != nil {
		return nil, fmt.Errorf("commit: base image %s: %w", from, err)
	}
	staging, err := s.newStaging("commit")
	if err != nil {
		return nil, err
	}
	defer removeTree(staging)

	c := Gzip
	if opts.CompressionSet {
		c = opts.Compression
	}
	lowers := append(append([]string(nil), opts.Lowers...), s.LayerDirs(base)...)
	blob, diffID, err := writeLayerBlob(upper, lowers, filepath.Join(staging, "layer.blob"), c)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	config, err := commitConfig(base.ConfigBytes, diffID, now, opts)
	if err != nil {
		return nil, err
	}
	plan := commitPlan(s, base, name, config, blob, filepath.Join(staging, "layer.blob"), c)
	ing := newIngest(s, staging, opts.Progress, opts.Warn)
	imgs, err := ing.run([]*planImage{plan})
	if err != nil {
		return nil, err
	}
	return imgs[0], nil
}

// writeLayerBlob writes the diff tar of upper (over lowers), compressed, to path and
// returns the blob digest and the diff ID (digest of the uncompressed tar).
func writeLayerBlob(upper string, lowers []string, path string, c Compression) (blob, diffID digest.Digest, err error) {
	f, err := os.Create(path)
	if err != nil {
		return "", "", fmt.Errorf("commit: %w", err)
	}
	defer f.Close()
	blobHash := digest.SHA256.Digester()
	zw, err := compressWriter(io.MultiWriter(f, blobHash.Hash()), c)
	if err != nil {
		return "", "", fmt.Errorf("commit: %w", err)
	}
	diffHash := digest.SHA256.Digester()
	if err := WriteDiffTar(upper, lowers, io.MultiWriter(zw, diffHash.Hash())); err != nil {
		return "", "", fmt.Errorf("commit: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", "", fmt.Errorf("commit: compress: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", "", fmt.Errorf("commit: %w", err)
	}
	return blobHash.Digest(), diffHash.Digest(), nil
}

// commitConfig adds the new layer and a history entry to the base config.
// It edits the JSON generically so fields we do not model survive.
func commitConfig(base []byte, diffID digest.Digest, now time.Time, opts CommitOptions) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(base, &cfg); err != nil {
		return nil, fmt.Errorf("commit: base config: %w", err)
	}
	var rootfs struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	}
	if err := json.Unmarshal(cfg["rootfs"], &rootfs); err != nil {
		return nil, fmt.Errorf("commit: base config rootfs: %w", err)
	}
	rootfs.DiffIDs = append(rootfs.DiffIDs, diffID)
	var history []map[string]any
	if raw, ok := cfg["history"]; ok {
		if err := json.Unmarshal(raw, &history); err != nil {
			return nil, fmt.Errorf("commit: base config history: %w", err)
		}
	}
	createdBy := opts.CreatedBy
	if createdBy == "" {
		createdBy = "crun-lite commit"
	}
	entry := map[string]any{"created": now.Format(time.RFC3339Nano), "created_by": createdBy}
	if opts.Comment != "" {
		entry["comment"] = opts.Comment
	}
	if opts.Author != "" {
		entry["author"] = opts.Author
		cfg["author"], _ = json.Marshal(opts.Author)
	}
	history = append(history, entry)
	var err error
	if cfg["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	if cfg["history"], err = json.Marshal(history); err != nil {
		return nil, err
	}
	cfg["created"], _ = json.Marshal(now.Format(time.RFC3339Nano))
	return json.Marshal(cfg)
}

// commitPlan describes the new image: the base's layers as stored, plus the
// staged blob. Its manifest is synthesized by the ingest.
func commitPlan(s *Store, base *Image, name string, config []byte, blob digest.Digest, blobPath string, c Compression) *planImage {
	p := &planImage{where: "commit " + name, names: []string{name}, config: config,
		configDigest: digest.FromBytes(config), configName: "new config"}
	for _, l := range base.Layers {
		l := l
		p.layers = append(p.layers, planLayer{name: l.Digest.String(), blob: l.Digest, size: l.Size, mediaType: l.MediaType,
			open: func() (io.ReadCloser, int64, error) { return openSized(s.blobPath(l.Digest)) }})
	}
	p.layers = append(p.layers, planLayer{name: "new layer", blob: blob, size: -1, mediaType: c.layerMediaType(),
		open: func() (io.ReadCloser, int64, error) { return openSized(blobPath) }})
	return p
}

func openSized(p string) (io.ReadCloser, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}
