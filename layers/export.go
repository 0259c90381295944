package layers

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ExportOptions tunes Export.
type ExportOptions struct {
	Progress Progress
}

// ParseFormat reads an export format name.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatDockerArchive, FormatOCIArchive, FormatOCIDir:
		return Format(s), nil
	case "oci-archive":
		return FormatOCIArchive, nil
	}
	return "", fmt.Errorf("unknown format %q (want docker-archive, oci or oci-dir)", s)
}

// Export writes the image ref names to out: a docker-save tarball
// (docker-archive, uncompressed layers, loads with docker/podman load and
// skopeo docker-archive:), an OCI layout tarball (oci, blobs as stored) or an
// OCI layout directory (oci-dir). The result appears atomically: it is built
// under a temporary name beside out and renamed.
func (s *Store) Export(ref, out string, format Format, opts ExportOptions) error {
	gc, err := s.lock("gc.lock", lockSH) // keep rmi from deleting blobs under us
	if err != nil {
		return err
	}
	defer gc.unlock()
	img, err := s.Image(ref)
	if err != nil {
		return fmt.Errorf("export %s: %w", ref, err)
	}
	names := exportNames(img, ref)
	if format == FormatOCIDir {
		return s.exportOCIDir(img, names, out, opts)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := s.ExportTo(img, names, f, format, opts); err != nil {
		f.Close()
		return fmt.Errorf("export %s to %s: %w", ref, out, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("export %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	return nil
}

// exportNames puts the name used in ref first, then the image's other names.
func exportNames(img *Image, ref string) []string {
	first, err := NormalizeName(ref)
	if err != nil || !contains(img.Names, first) {
		return img.Names
	}
	names := []string{first}
	for _, n := range img.Names {
		if n != first {
			names = append(names, n)
		}
	}
	return names
}

// ExportTo writes img as a tar stream in format (docker-archive or oci).
func (s *Store) ExportTo(img *Image, names []string, w io.Writer, format Format, opts ExportOptions) error {
	tw := tar.NewWriter(w)
	var err error
	switch format {
	case FormatDockerArchive:
		err = s.writeDockerArchive(tw, img, names, opts)
	case FormatOCIArchive:
		err = s.writeOCI(tarSink{tw}, img, names, opts)
	default:
		err = fmt.Errorf("format %q cannot be written to a stream", format)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

// exportTime is the fixed mtime of every exported member, so exports of
// the same image are byte-identical.
var exportTime = time.Unix(0, 0).UTC()

func tarDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: exportTime, Format: tar.FormatPAX})
}

func tarFileHeader(tw *tar.Writer, name string, size int64) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: exportTime, Format: tar.FormatPAX})
}

func tarBytes(tw *tar.Writer, name string, data []byte) error {
	if err := tarFileHeader(tw, name, int64(len(data))); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// writeDockerArchive writes the classic docker-save layout:
// <layer diff hex>/layer.tar (uncompressed), <config hex>.json, manifest.json.
func (s *Store) writeDockerArchive(tw *tar.Writer, img *Image, names []string, opts ExportOptions) error {
	var layerNames []string
	written := map[digest.Digest]bool{}
	for _, l := range img.Layers {
		name := l.DiffID.Encoded() + "/layer.tar"
		layerNames = append(layerNames, name)
		if written[l.DiffID] {
			continue
		}
		written[l.DiffID] = true
		if err := tarDir(tw, l.DiffID.Encoded()); err != nil {
			return err
		}
		if err := s.writeUncompressedLayer(tw, name, l, opts); err != nil {
			return err
		}
	}
	cfgName := img.ID.Encoded() + ".json"
	if err := tarBytes(tw, cfgName, img.ConfigBytes); err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	manifest, err := json.Marshal([]dockerManifestEntry{{Config: cfgName, RepoTags: names, Layers: layerNames}})
	if err != nil {
		return err
	}
	return tarBytes(tw, "manifest.json", manifest)
}

// writeUncompressedLayer streams a layer's tar into the archive and checks it
// against the diff ID on the way: a damaged store is reported, not exported.
func (s *Store) writeUncompressedLayer(tw *tar.Writer, name string, l Layer, opts ExportOptions) error {
	f, err := os.Open(s.blobPath(l.Digest))
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer f.Close()
	var src io.Reader = f
	if opts.Progress != nil {
		bar := opts.Progress.Start("export "+shortID(l.DiffID), l.Size)
		defer bar.Close()
		src = io.TeeReader(f, bar)
	}
	rc, _, err := decompress(src)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	if err := tarFileHeader(tw, name, l.UncompressedSize); err != nil {
		return err
	}
	h := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(tw, h.Hash()), rc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if n != l.UncompressedSize || h.Digest() != l.DiffID {
		return fmt.Errorf("layer %s in the store is damaged: expected %s (%d bytes), actual %s (%d bytes)",
			l.Digest, l.DiffID, l.UncompressedSize, h.Digest(), n)
	}
	return nil
}

// ociSink receives the files of an OCI layout (a tar or a directory).
type ociSink interface {
	dir(name string) error
	bytes(name string, data []byte) error
	copyFile(name, src string, size int64, bar io.Writer) error
}

// writeOCI writes oci-layout, the blobs and an index.json naming the image.
// skopeo's oci-archive: takes an archive with one manifest entry, so the
// image gets one entry, under its first name.
func (s *Store) writeOCI(sink ociSink, img *Image, names []string, opts ExportOptions) error {
	layout, _ := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err := sink.bytes(v1.ImageLayoutFile, layout); err != nil {
		return err
	}
	for _, d := range []string{"blobs", "blobs/sha256"} {
		if err := sink.dir(d); err != nil {
			return err
		}
	}
	written := map[digest.Digest]bool{}
	for _, l := range img.Layers {
		if written[l.Digest] {
			continue
		}
		written[l.Digest] = true
		var bar io.Writer
		if opts.Progress != nil {
			b := opts.Progress.Start("export "+shortID(l.Digest), l.Size)
			defer b.Close()
			bar = b
		}
		if err := sink.copyFile("blobs/sha256/"+l.Digest.Encoded(), s.blobPath(l.Digest), l.Size, bar); err != nil {
			return err
		}
	}
	if err := sink.bytes("blobs/sha256/"+img.ID.Encoded(), img.ConfigBytes); err != nil {
		return err
	}
	if err := sink.bytes("blobs/sha256/"+img.ManifestDigest.Encoded(), img.ManifestBytes); err != nil {
		return err
	}
	idx, err := json.Marshal(ociIndex(img, names))
	if err != nil {
		return err
	}
	return sink.bytes(v1.ImageIndexFile, idx)
}

func ociIndex(img *Image, names []string) v1.Index {
	mt := img.Manifest.MediaType
	if mt == "" {
		mt = v1.MediaTypeImageManifest
	}
	desc := v1.Descriptor{MediaType: mt, Digest: img.ManifestDigest, Size: int64(len(img.ManifestBytes))}
	if len(names) > 0 {
		_, tag := splitTag(names[0])
		desc.Annotations = map[string]string{annotationContainerdName: names[0], v1.AnnotationRefName: tag}
	}
	return v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{desc}}
}

func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// tarSink writes the layout into a tar stream.
type tarSink struct{ tw *tar.Writer }

func (t tarSink) dir(name string) error                { return tarDir(t.tw, name) }
func (t tarSink) bytes(name string, data []byte) error { return tarBytes(t.tw, name, data) }
func (t tarSink) copyFile(name, src string, size int64, bar io.Writer) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tarFileHeader(t.tw, name, size); err != nil {
		return err
	}
	var r io.Reader = f
	if bar != nil {
		r = io.TeeReader(f, bar)
	}
	n, err := io.Copy(t.tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("blob %s changed size in the store (%d, want %d)", src, n, size)
	}
	return err
}

// dirSink writes the layout into a directory.
type dirSink struct{ root string }

func (d dirSink) dir(name string) error { return os.MkdirAll(filepath.Join(d.root, name), 0o755) }
func (d dirSink) bytes(name string, data []byte) error {
	return os.WriteFile(filepath.Join(d.root, name), data, 0o644)
}
func (d dirSink) copyFile(name, src string, size int64, bar io.Writer) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(d.root, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	var r io.Reader = in
	if bar != nil {
		r = io.TeeReader(in, bar)
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// exportOCIDir writes an OCI layout directory; out must not exist yet.
func (s *Store) exportOCIDir(img *Image, names []string, out string, opts ExportOptions) error {
	if fileExists(out) {
		return fmt.Errorf("export %s: %s already exists", img.ID, out)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	defer os.RemoveAll(tmp)
	if err := s.writeOCI(dirSink{tmp}, img, names, opts); err != nil {
		return fmt.Errorf("export %s to %s: %w", img.ID, out, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	return nil
}
