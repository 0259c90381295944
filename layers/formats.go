package layers

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"runtime"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types we accept beside the OCI ones.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerForeignGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

	annotationContainerdName = "io.containerd.image.name"
)

var layerMediaTypes = map[string]bool{
	v1.MediaTypeImageLayer: true, v1.MediaTypeImageLayerGzip: true, v1.MediaTypeImageLayerZstd: true,
	v1.MediaTypeImageLayerNonDistributable:     true, //nolint:staticcheck // still met in the wild
	v1.MediaTypeImageLayerNonDistributableGzip: true, //nolint:staticcheck
	v1.MediaTypeImageLayerNonDistributableZstd: true, //nolint:staticcheck
	mediaTypeDockerLayerGzip:                   true, mediaTypeDockerLayer: true, mediaTypeDockerForeignGzip: true,
}

var configMediaTypes = map[string]bool{v1.MediaTypeImageConfig: true, mediaTypeDockerConfig: true}

// planImage is one image to ingest, whatever archive it came from.
type planImage struct {
	where        string // for messages: "FILE: manifest.json entry 1"
	names        []string
	config       []byte
	configDigest digest.Digest // verified equal to sha256(config) by ingest
	configName   string        // member name, for messages
	manifest     []byte        // verbatim manifest; nil = synthesize one
	layers       []planLayer
}

// planLayer is one layer blob to read.
type planLayer struct {
	name      string // member name, for messages
	open      func() (io.ReadCloser, int64, error)
	blob      digest.Digest // expected blob digest; "" when the archive gives none
	size      int64         // expected blob size; -1 when unknown
	mediaType string        // declared media type; "" = from the detected compression
}

// hexJSONName matches docker-save config names "<64 hex>.json".
var hexJSONName = regexp.MustCompile(`^([0-9a-f]{64})\.json$`)

// blobPathDigest matches OCI blob paths "blobs/sha256/<hex>".
var blobPathDigest = regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)

// digestFromName returns the digest a member name promises, if any.
func digestFromName(name string) digest.Digest {
	if m := blobPathDigest.FindStringSubmatch(name); m != nil {
		return digest.NewDigestFromEncoded(digest.SHA256, m[1])
	}
	if m := hexJSONName.FindStringSubmatch(path.Base(name)); m != nil {
		return digest.NewDigestFromEncoded(digest.SHA256, m[1])
	}
	return ""
}

type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// parseDockerSave reads manifest.json of a docker-save archive (classic
// <id>/layer.tar form or docker >= 25 blobs/sha256 form).
func parseDockerSave(src source) ([]*planImage, error) {
	data, err := readMember(src, "manifest.json")
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("import %s: manifest.json: malformed JSON: %v", src.where(), err)
	}
	var plans []*planImage
	for i, e := range entries {
		p, err := dockerPlan(src, i, e)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func dockerPlan(src source, i int, e dockerManifestEntry) (*planImage, error) {
	where := fmt.Sprintf("%s: manifest.json entry %d", src.where(), i+1)
	if e.Config == "" {
		return nil, fmt.Errorf("import %s: no Config", where)
	}
	cfgName, err := cleanMemberName(e.Config)
	if err != nil {
		return nil, fmt.Errorf("import %s: Config: %v", where, err)
	}
	cfg, err := readMember(src, cfgName)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	p := &planImage{where: where, config: cfg, configName: cfgName, configDigest: digestFromName(cfgName)}
	if p.configDigest == "" {
		p.configDigest = digest.FromBytes(cfg) // nothing promised, nothing to check
	}
	for _, t := range e.RepoTags {
		n, err := NormalizeName(t)
		if err != nil {
			return nil, fmt.Errorf("import %s: RepoTags: %v", where, err)
		}
		p.names = append(p.names, n)
	}
	for _, l := range e.Layers {
		name, err := cleanMemberName(l)
		if err != nil {
			return nil, fmt.Errorf("import %s: Layers: %v", where, err)
		}
		p.layers = append(p.layers, planLayer{
			name: name, blob: digestFromName(name), size: -1,
			open: func() (io.ReadCloser, int64, error) { return src.open(name) },
		})
	}
	return p, nil
}

// ociLayout reads an OCI image layout (skopeo, umoci, podman, buildah).
type ociLayout struct {
	src  source
	repo string // repository for images whose ref.name is only a tag
}

func parseOCILayout(src source, repo string) ([]*planImage, error) {
	o := &ociLayout{src: src, repo: repo}
	layoutData, err := readMember(src, v1.ImageLayoutFile)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	var layout v1.ImageLayout
	if err := json.Unmarshal(layoutData, &layout); err != nil {
		return nil, fmt.Errorf("import %s: %s: malformed JSON: %v", src.where(), v1.ImageLayoutFile, err)
	}
	if layout.Version != v1.ImageLayoutVersion {
		return nil, fmt.Errorf("import %s: %s: unsupported imageLayoutVersion %q", src.where(), v1.ImageLayoutFile, layout.Version)
	}
	data, err := readMember(src, v1.ImageIndexFile)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	var idx v1.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("import %s: index.json: malformed JSON: %v", src.where(), err)
	}
	var plans []*planImage
	for _, d := range idx.Manifests {
		p, err := o.resolve(d, o.names(d), 0)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// names reads an index entry's name annotations. containerd and docker put
// the full name in io.containerd.image.name; skopeo and umoci put only a tag
// in ref.name, which gets the layout's default repository.
func (o *ociLayout) names(d v1.Descriptor) []string {
	if n, err := NormalizeName(d.Annotations[annotationContainerdName]); err == nil {
		return []string{n}
	}
	ref := d.Annotations[v1.AnnotationRefName]
	if ref == "" {
		return nil
	}
	full := ref
	if !regexp.MustCompile(`[:/]`).MatchString(ref) {
		full = o.repo + ":" + ref
	}
	if n, err := NormalizeName(full); err == nil {
		return []string{n}
	}
	return nil
}

// readBlob reads a small blob and checks its digest and size.
func (o *ociLayout) readBlob(d v1.Descriptor) ([]byte, error) {
	name, err := blobName(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("import %s: %v", o.src.where(), err)
	}
	data, err := readMember(o.src, name)
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	if got := digest.FromBytes(data); got != d.Digest {
		return nil, fmt.Errorf("import %s: %s: digest mismatch: expected %s, actual %s", o.src.where(), name, d.Digest, got)
	}
	if d.Size != int64(len(data)) {
		return nil, fmt.Errorf("import %s: %s: size mismatch: descriptor says %d, blob has %d bytes", o.src.where(), name, d.Size, len(data))
	}
	return data, nil
}

// blobName is the layout path of a digest; only sha256 is supported.
func blobName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("bad digest %q: %v", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %s: unsupported algorithm %s", d, d.Algorithm())
	}
	return "blobs/sha256/" + d.Encoded(), nil
}

// mediaTypeOf returns the descriptor's media type, or the document's own
// "mediaType" field when the descriptor omits it.
func mediaTypeOf(d v1.Descriptor, data []byte) string {
	if d.MediaType != "" {
		return d.MediaType
	}
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	json.Unmarshal(data, &probe)
	return probe.MediaType
}

// resolve turns an index entry into a plan, descending through image
// indexes to the manifest for this machine's platform.
func (o *ociLayout) resolve(d v1.Descriptor, names []string, depth int) (*planImage, error) {
	if depth > 4 {
		return nil, fmt.Errorf("import %s: image indexes nested too deep", o.src.where())
	}
	data, err := o.readBlob(d)
	if err != nil {
		return nil, err
	}
	mt := mediaTypeOf(d, data)
	switch mt {
	case v1.MediaTypeImageIndex, mediaTypeDockerManifestList:
		child, err := o.pickPlatform(d, data)
		if err != nil {
			return nil, err
		}
		return o.resolve(child, names, depth+1)
	case v1.MediaTypeImageManifest, mediaTypeDockerManifest:
		return o.manifestPlan(d, data, names)
	}
	return nil, fmt.Errorf("import %s: blobs/sha256/%s: unknown media type %q", o.src.where(), d.Digest.Encoded(), mt)
}

// pickPlatform chooses linux/GOARCH from a multi-platform index.
func (o *ociLayout) pickPlatform(d v1.Descriptor, data []byte) (v1.Descriptor, error) {
	var idx v1.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return d, fmt.Errorf("import %s: blobs/sha256/%s: malformed JSON: %v", o.src.where(), d.Digest.Encoded(), err)
	}
	for _, m := range idx.Manifests {
		if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH) {
			return m, nil
		}
	}
	return d, fmt.Errorf("import %s: index %s has no image for linux/%s", o.src.where(), d.Digest, runtime.GOARCH)
}

func (o *ociLayout) manifestPlan(d v1.Descriptor, data []byte, names []string) (*planImage, error) {
	where := fmt.Sprintf("%s: manifest %s", o.src.where(), d.Digest)
	var m v1.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("import %s: malformed JSON: %v", where, err)
	}
	if !configMediaTypes[m.Config.MediaType] {
		return nil, fmt.Errorf("import %s: config: unknown media type %q", where, m.Config.MediaType)
	}
	cfg, err := o.readBlob(m.Config)
	if err != nil {
		return nil, err
	}
	p := &planImage{where: where, names: names, config: cfg, configDigest: m.Config.Digest,
		configName: "blobs/sha256/" + m.Config.Digest.Encoded(), manifest: data}
	for i, l := range m.Layers {
		if !layerMediaTypes[l.MediaType] {
			return nil, fmt.Errorf("import %s: layer %d: unknown media type %q", where, i+1, l.MediaType)
		}
		name, err := blobName(l.Digest)
		if err != nil {
			return nil, fmt.Errorf("import %s: layer %d: %v", where, i+1, err)
		}
		if !o.src.has(name) {
			return nil, fmt.Errorf("import %s: layer %d: blob %s is missing from the layout", where, i+1, name)
		}
		p.layers = append(p.layers, planLayer{
			name: name, blob: l.Digest, size: l.Size, mediaType: l.MediaType,
			open: func() (io.ReadCloser, int64, error) { return o.src.open(name) },
		})
	}
	return p, nil
}
