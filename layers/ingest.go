package layers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unionfsd/unionfsd/internal/userns"
)

// ingest verifies and stages the blobs and layers of a set of planned
// images, then publishes them all at once. Nothing reaches blobs/, layers/
// or images.json before every digest of every image has been checked.
type ingest struct {
	s        *Store
	staging  string
	progress Progress
	warn     func(string)
	blobs    map[digest.Digest]string // staged blob -> path in staging
	layers   map[digest.Digest]string // staged chain ID -> dir in staging
	records  []*imageRecord
}

func newIngest(s *Store, staging string, p Progress, warn func(string)) *ingest {
	for _, d := range []string{"blobs", "layers"} {
		os.MkdirAll(filepath.Join(staging, d), 0o700)
	}
	return &ingest{s: s, staging: staging, progress: p, warn: warn,
		blobs: map[digest.Digest]string{}, layers: map[digest.Digest]string{}}
}

// run stages every plan, then publishes, and returns the stored images.
func (g *ingest) run(plans []*planImage) ([]*Image, error) {
	for _, p := range plans {
		rec, err := g.stageImage(p)
		if err != nil {
			return nil, err
		}
		g.records = append(g.records, rec)
	}
	if err := g.publish(); err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(g.records))
	for _, rec := range g.records {
		img, err := g.s.Image(rec.ID.String())
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// imageConfigRootFS is the part of the config we check.
type imageConfigRootFS struct {
	RootFS struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
}

func (g *ingest) stageImage(p *planImage) (*imageRecord, error) {
	if got := digest.FromBytes(p.config); got != p.configDigest {
		return nil, fmt.Errorf("import %s: config %s: digest mismatch: expected %s, actual %s", p.where, p.configName, p.configDigest, got)
	}
	var cfg imageConfigRootFS
	if err := json.Unmarshal(p.config, &cfg); err != nil {
		return nil, fmt.Errorf("import %s: config %s: malformed JSON: %v", p.where, p.configName, err)
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("import %s: config %s: rootfs.type is %q, want \"layers\"", p.where, p.configName, cfg.RootFS.Type)
	}
	if len(cfg.RootFS.DiffIDs) != len(p.layers) {
		return nil, fmt.Errorf("import %s: config %s lists %d diff_ids but the manifest has %d layers",
			p.where, p.configName, len(cfg.RootFS.DiffIDs), len(p.layers))
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("import %s: config %s: bad diff_id %q: %v", p.where, p.configName, d, err)
		}
	}
	chains := ChainIDs(cfg.RootFS.DiffIDs)
	rec := &imageRecord{ID: p.configDigest, Names: p.names, Added: time.Now().UTC()}
	for i, pl := range p.layers {
		l, err := g.stageLayer(p, i, pl, cfg.RootFS.DiffIDs[i], chains[i])
		if err != nil {
			return nil, err
		}
		rec.Layers = append(rec.Layers, l)
	}
	if err := g.stageBytes(p.configDigest, p.config); err != nil {
		return nil, err
	}
	manifest := p.manifest
	if manifest == nil {
		var err error
		if manifest, err = synthesizeManifest(p.configDigest, int64(len(p.config)), rec.Layers); err != nil {
			return nil, err
		}
	}
	rec.Manifest = digest.FromBytes(manifest)
	if err := g.stageBytes(rec.Manifest, manifest); err != nil {
		return nil, err
	}
	return rec, nil
}

// synthesizeManifest writes the OCI manifest of an image that came without
// one (docker-save, commit). Deterministic, so a re-import gives the same digest.
func synthesizeManifest(config digest.Digest, configSize int64, layers []Layer) ([]byte, error) {
	m := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: config, Size: configSize},
		Layers:    []v1.Descriptor{},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	return json.Marshal(m)
}

// stageBytes stages a small blob unless the store or staging has it.
func (g *ingest) stageBytes(d digest.Digest, data []byte) error {
	if g.blobs[d] != "" || fileExists(g.s.blobPath(d)) {
		return nil
	}
	p := filepath.Join(g.staging, "blobs", d.Encoded())
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return fmt.Errorf("stage blob %s: %w", d, err)
	}
	g.blobs[d] = p
	return nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// layerMeta is layers/<chain>/layer.json.
type layerMeta struct {
	ChainID          digest.Digest `json:"chainID"`
	DiffID           digest.Digest `json:"diffID"`
	UncompressedSize int64         `json:"uncompressedSize"`
}

func (s *Store) readLayerMeta(chain digest.Digest) (*layerMeta, error) {
	data, err := os.ReadFile(filepath.Join(s.layerPath(chain), "layer.json"))
	if err != nil {
		return nil, err
	}
	var m layerMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("layer %s: %w", chain, err)
	}
	return &m, nil
}

// stageLayer makes sure the blob and the extracted layer exist in the store
// or in staging. A layer whose blob and extraction are both stored already is
// not read at all.
func (g *ingest) stageLayer(p *planImage, i int, pl planLayer, diffID, chain digest.Digest) (Layer, error) {
	l := Layer{Digest: pl.blob, MediaType: pl.mediaType, Size: pl.size, DiffID: diffID, ChainID: chain}
	haveLayer := g.layers[chain] != "" || fileExists(g.s.layerPath(chain))
	haveBlob := pl.blob != "" && (g.blobs[pl.blob] != "" || fileExists(g.s.blobPath(pl.blob)))
	if haveLayer && haveBlob {
		return g.knownLayer(l)
	}
	where := fmt.Sprintf("%s: layer %d (%s)", p.where, i+1, pl.name)
	return g.readLayer(where, pl, l, !haveLayer, !haveBlob)
}

// knownLayer fills in a layer record from what is stored already.
func (g *ingest) knownLayer(l Layer) (Layer, error) {
	blobPath := g.blobs[l.Digest]
	if blobPath == "" {
		blobPath = g.s.blobPath(l.Digest)
	}
	st, err := os.Stat(blobPath)
	if err != nil {
		return l, fmt.Errorf("blob %s: %w", l.Digest, err)
	}
	l.Size = st.Size()
	if l.MediaType == "" {
		c, err := blobCompression(blobPath)
		if err != nil {
			return l, err
		}
		l.MediaType = c.layerMediaType()
	}
	if dir := g.layers[l.ChainID]; dir != "" {
		data, err := os.ReadFile(filepath.Join(dir, "layer.json"))
		if err != nil {
			return l, err
		}
		var m layerMeta
		json.Unmarshal(data, &m)
		l.UncompressedSize = m.UncompressedSize
		return l, nil
	}
	m, err := g.s.readLayerMeta(l.ChainID)
	if err != nil {
		return l, err
	}
	l.UncompressedSize = m.UncompressedSize
	return l, nil
}

func blobCompression(p string) (Compression, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return detectCompression(bufio.NewReader(f))
}

// readLayer streams one layer blob once: it hashes the blob, stages it if
// the store lacks it, decompresses, hashes the tar (the diff ID) and extracts
// it if the store lacks the layer. Then it checks both digests.
func (g *ingest) readLayer(where string, pl planLayer, l Layer, extract, keepBlob bool) (Layer, error) {
	rc, size, err := pl.open()
	if err != nil {
		return l, fmt.Errorf("import %w", err)
	}
	defer rc.Close()
	if pl.size >= 0 && pl.size != size {
		return l, fmt.Errorf("import %s: size mismatch: descriptor says %d, blob has %d bytes", where, pl.size, size)
	}
	var blobFile *os.File
	if keepBlob {
		if blobFile, err = os.CreateTemp(filepath.Join(g.staging, "blobs"), "incoming-*"); err != nil {
			return l, fmt.Errorf("import %s: %w", where, err)
		}
		defer blobFile.Close()
	}
	var layerDir string
	if extract {
		layerDir = filepath.Join(g.staging, "layers", l.ChainID.Encoded())
		if err := os.MkdirAll(filepath.Join(layerDir, "diff"), 0o755); err != nil {
			return l, fmt.Errorf("import %s: %w", where, err)
		}
	}
	res, err := g.stream(rc, size, blobFile, layerDir, "layer "+shortName(pl.name))
	if err != nil {
		// A corrupt stream is most often a wrong blob: say so when we can.
		if pl.blob != "" && res.blob != "" && res.blob != pl.blob {
			return l, fmt.Errorf("import %s: digest mismatch: expected %s, actual %s", where, pl.blob, res.blob)
		}
		return l, fmt.Errorf("import %s: %w", where, err)
	}
	if pl.blob != "" && res.blob != pl.blob {
		return l, fmt.Errorf("import %s: digest mismatch: expected %s, actual %s", where, pl.blob, res.blob)
	}
	if res.diff != l.DiffID {
		return l, fmt.Errorf("import %s: diff_id mismatch: config expects %s, actual %s", where, l.DiffID, res.diff)
	}
	l.Digest, l.Size, l.UncompressedSize = res.blob, res.size, res.tarSize
	if l.MediaType == "" {
		l.MediaType = res.compression.layerMediaType()
	}
	if keepBlob {
		final := filepath.Join(g.staging, "blobs", l.Digest.Encoded())
		if err := os.Rename(blobFile.Name(), final); err != nil {
			return l, fmt.Errorf("import %s: %w", where, err)
		}
		g.blobs[l.Digest] = final
	}
	if extract {
		meta, _ := json.Marshal(layerMeta{ChainID: l.ChainID, DiffID: l.DiffID, UncompressedSize: l.UncompressedSize})
		if err := os.WriteFile(filepath.Join(layerDir, "layer.json"), meta, 0o600); err != nil {
			return l, fmt.Errorf("import %s: %w", where, err)
		}
		g.layers[l.ChainID] = layerDir
	}
	return l, nil
}

type streamResult struct {
	blob, diff    digest.Digest
	size, tarSize int64
	compression   Compression
}

// stream does the single pass of readLayer. On error, res.blob still holds
// the blob digest when the whole blob could be read.
func (g *ingest) stream(raw io.Reader, size int64, blobFile *os.File, layerDir, label string) (streamResult, error) {
	var res streamResult
	blobHash := digest.SHA256.Digester()
	blobCount := &countWriter{}
	sinks := []io.Writer{blobHash.Hash(), blobCount}
	if blobFile != nil {
		sinks = append(sinks, blobFile)
	}
	if g.progress != nil {
		bar := g.progress.Start(label, size)
		defer bar.Close()
		sinks = append(sinks, bar)
	}
	blob := newReadAhead(raw, io.MultiWriter(sinks...))
	defer blob.Close() // before bar.Close: the read-ahead goroutine writes to the bar
	finishBlob := func() error {
		_, err := io.Copy(io.Discard, blob)
		if err == nil {
			res.blob, res.size = blobHash.Digest(), blobCount.n
		}
		return err
	}
	tarStream, c, err := decompress(blob)
	if err != nil {
		finishBlob()
		return res, err
	}
	tarClosed := false
	closeTar := func() {
		if !tarClosed {
			tarClosed = true
			tarStream.Close()
		}
	}
	defer closeTar()
	res.compression = c
	// An uncompressed blob is the tar itself: its digest is the diff ID,
	// so the tar is hashed a second time only when it was compressed.
	var tarIn io.Reader = tarStream
	diffHash := digest.SHA256.Digester()
	tarCount := &countWriter{}
	if c != Uncompressed {
		tarIn = io.TeeReader(tarStream, io.MultiWriter(diffHash.Hash(), tarCount))
	}
	if layerDir != "" {
		_, err = Extract(tarIn, filepath.Join(layerDir, "diff"), ExtractOptions{AsRoot: os.Geteuid() == 0, InUserNS: userns.Inside(), Warn: g.warn})
	}
	if err == nil {
		// Drain what the tar reader left (padding past the end marker).
		_, err = io.Copy(io.Discard, tarIn)
	}
	if err != nil {
		// pgzip reads blob ahead on a goroutine of its own: stop it before
		// finishBlob reads blob too (one reader at a time), or the two
		// race on the read-ahead's buffers.
		closeTar()
	}
	if ferr := finishBlob(); err == nil {
		err = ferr
	}
	if err != nil {
		return res, err
	}
	if c == Uncompressed {
		res.diff, res.tarSize = res.blob, res.size
	} else {
		res.diff, res.tarSize = diffHash.Digest(), tarCount.n
	}
	return res, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// publish renames staged blobs and layers into the store and records the
// images, under the index lock. Each rename is atomic; a crash half-way
// leaves only complete, verified, unreferenced content behind.
func (g *ingest) publish() error {
	lk, err := g.s.lock("index.lock", lockEX)
	if err != nil {
		return err
	}
	defer lk.unlock()
	for d, p := range g.blobs {
		if fileExists(g.s.blobPath(d)) {
			continue
		}
		if err := os.Rename(p, g.s.blobPath(d)); err != nil {
			return fmt.Errorf("publish blob %s: %w", d, err)
		}
	}
	for chain, dir := range g.layers {
		if fileExists(g.s.layerPath(chain)) {
			continue // a concurrent import won the race; its copy is identical
		}
		if err := os.Rename(dir, g.s.layerPath(chain)); err != nil {
			return fmt.Errorf("publish layer %s: %w", chain, err)
		}
	}
	idx, err := g.s.readIndex()
	if err != nil {
		return err
	}
	for _, rec := range g.records {
		cur := idx.byID(rec.ID)
		if cur == nil { // else: the same image is stored already; only names change
			cur = rec
			idx.Images = append(idx.Images, rec)
		}
		for _, n := range rec.Names {
			idx.untag(n, cur)
			if !contains(cur.Names, n) {
				cur.Names = append(cur.Names, n)
			}
		}
	}
	return g.s.writeIndex(idx)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shortName shortens "blobs/sha256/<hex>" and "<hex>/layer.tar" to 12 hex
// digits for progress labels.
func shortName(name string) string {
	for _, part := range strings.Split(name, "/") {
		if len(part) == 64 && strings.Trim(part, "0123456789abcdef") == "" {
			return part[:12]
		}
	}
	return name
}
