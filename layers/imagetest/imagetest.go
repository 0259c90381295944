// Package imagetest builds container images for tests from an in-memory
// description: layers of tar entries (files, dirs, symlinks, hardlinks,
// whiteouts, opaque dirs, xattrs, devices), optionally gzip- or
// zstd-compressed, written as a docker-save tarball or an OCI image layout.
// BusyboxImage makes a runnable image from Debian's static busybox.
//
// It imports nothing of this module, so any package's tests can use it.
package imagetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// DefaultTime is the mtime entries get unless set.
var DefaultTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Entry is one tar entry. Hdr.Size is set from Body for regular files.
type Entry struct {
	Hdr  tar.Header
	Body []byte
}

func entry(typ byte, name string, mode int64) Entry {
	return Entry{Hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: DefaultTime, Format: tar.FormatPAX}}
}

// File is a regular file.
func File(name, content string, mode int64) Entry {
	e := entry(tar.TypeReg, name, mode)
	e.Body = []byte(content)
	return e
}

// BigFile is a regular file with the given bytes.
func BigFile(name string, content []byte, mode int64) Entry {
	e := entry(tar.TypeReg, name, mode)
	e.Body = content
	return e
}

// Dir is a directory.
func Dir(name string, mode int64) Entry {
	return entry(tar.TypeDir, strings.TrimSuffix(name, "/")+"/", mode)
}

// Symlink is a symbolic link name -> target.
func Symlink(name, target string) Entry {
	e := entry(tar.TypeSymlink, name, 0o777)
	e.Hdr.Linkname = target
	return e
}

// Hardlink is a hard link name to the earlier entry target.
func Hardlink(name, target string) Entry {
	e := entry(tar.TypeLink, name, 0o644)
	e.Hdr.Linkname = target
	return e
}

// Whiteout hides p (a path in lower layers): an empty ".wh.<base>" file.
func Whiteout(p string) Entry {
	dir, base := path.Split(p)
	return File(dir+".wh."+base, "", 0o600)
}

// Opaque hides everything below dir in lower layers.
func Opaque(dir string) Entry {
	return File(strings.TrimSuffix(dir, "/")+"/.wh..wh..opq", "", 0o600)
}

// Device is a character (tar.TypeChar), block or fifo node.
func Device(name string, typ byte, major, minor int64) Entry {
	e := entry(typ, name, 0o666)
	e.Hdr.Devmajor, e.Hdr.Devminor = major, minor
	return e
}

// Raw is an entry exactly as given (for hostile archives).
func Raw(hdr tar.Header, body []byte) Entry { return Entry{Hdr: hdr, Body: body} }

// WithXattr adds a PAX xattr record (SCHILY.xattr.key).
func (e Entry) WithXattr(key, value string) Entry {
	recs := map[string]string{}
	for k, v := range e.Hdr.PAXRecords {
		recs[k] = v
	}
	recs["SCHILY.xattr."+key] = value
	e.Hdr.PAXRecords = recs
	return e
}

// WithOwner sets uid and gid.
func (e Entry) WithOwner(uid, gid int) Entry { e.Hdr.Uid, e.Hdr.Gid = uid, gid; return e }

// WithMtime sets the modification time.
func (e Entry) WithMtime(t time.Time) Entry { e.Hdr.ModTime = t; return e }

// Compression of a layer blob.
type Compression int

const (
	None Compression = iota
	Gzip
	Zstd
)

// Layer is one layer of an image.
type Layer struct {
	Entries     []Entry
	Compression Compression
}

// Image describes one image.
type Image struct {
	Names      []string // "name:tag"
	Layers     []Layer
	Cmd        []string
	Entrypoint []string
	Env        []string
	WorkingDir string
	Created    time.Time
}

// BuiltLayer is a layer as bytes, with its digests ("sha256:<hex>").
type BuiltLayer struct {
	Tar       []byte // uncompressed
	Blob      []byte // as stored in the archive
	DiffID    string
	Digest    string
	MediaType string
}

// Digest returns "sha256:<hex>" of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TarEntries writes entries as an uncompressed tar.
func TarEntries(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.Hdr
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if len(e.Body) > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BuildLayer makes the tar and blob of a layer.
func BuildLayer(l Layer) (BuiltLayer, error) {
	raw, err := TarEntries(l.Entries)
	if err != nil {
		return BuiltLayer{}, err
	}
	b := BuiltLayer{Tar: raw, DiffID: Digest(raw)}
	switch l.Compression {
	case Gzip:
		var buf bytes.Buffer
		zw := pgzip.NewWriter(&buf)
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			return b, err
		}
		b.Blob, b.MediaType = buf.Bytes(), "application/vnd.oci.image.layer.v1.tar+gzip"
	case Zstd:
		var buf bytes.Buffer
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			return b, err
		}
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			return b, err
		}
		b.Blob, b.MediaType = buf.Bytes(), "application/vnd.oci.image.layer.v1.tar+zstd"
	default:
		b.Blob, b.MediaType = raw, "application/vnd.oci.image.layer.v1.tar"
	}
	b.Digest = Digest(b.Blob)
	return b, nil
}

// BuiltImage is an image as bytes.
type BuiltImage struct {
	Image
	Layers []BuiltLayer
	Config []byte
}

// ConfigDigest is the image ID.
func (b *BuiltImage) ConfigDigest() string { return Digest(b.Config) }

// Build makes the layers and the config of img.
func Build(img Image) (*BuiltImage, error) {
	b := &BuiltImage{Image: img}
	var diffIDs []string
	for i, l := range img.Layers {
		bl, err := BuildLayer(l)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		b.Layers = append(b.Layers, bl)
		diffIDs = append(diffIDs, bl.DiffID)
	}
	created := img.Created
	if created.IsZero() {
		created = DefaultTime
	}
	history := []map[string]string{}
	for i := range img.Layers {
		history = append(history, map[string]string{"created": created.Format(time.RFC3339), "created_by": fmt.Sprintf("imagetest layer %d", i+1)})
	}
	cfg := map[string]any{
		"created":      created.Format(time.RFC3339),
		"architecture": goarch(),
		"os":           "linux",
		"config":       map[string]any{"Cmd": img.Cmd, "Entrypoint": img.Entrypoint, "Env": img.Env, "WorkingDir": img.WorkingDir},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": nonNil(diffIDs)},
		"history":      history,
	}
	var err error
	if b.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	return b, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Manifest returns the OCI manifest of b.
func (b *BuiltImage) Manifest() []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Config: desc{"application/vnd.oci.image.config.v1+json", Digest(b.Config), len(b.Config)}, Layers: []desc{}}
	for _, l := range b.Layers {
		m.Layers = append(m.Layers, desc{l.MediaType, l.Digest, len(l.Blob)})
	}
	data, _ := json.Marshal(m)
	return data
}

// archiveWriter collects the members of an archive.
type archiveWriter struct {
	names []string
	files map[string][]byte
}

func (a *archiveWriter) add(name string, data []byte) {
	if a.files == nil {
		a.files = map[string][]byte{}
	}
	if _, ok := a.files[name]; !ok {
		a.names = append(a.names, name)
	}
	a.files[name] = data
}

// addJSON adds the member name holding v as JSON.
func (a *archiveWriter) addJSON(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	a.add(name, data)
	return nil
}

// tarTo writes the members as a tar file.
func (a *archiveWriter) tarTo(p string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, n := range a.names {
		if d := path.Dir(n); d != "." && !dirs[d] {
			dirs[d] = true
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: DefaultTime})
		}
		data := a.files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(data)), ModTime: DefaultTime}); err != nil {
			return err
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(p, buf.Bytes(), 0o644)
}

// dirTo writes the members under dir.
func (a *archiveWriter) dirTo(dir string) error {
	for _, n := range a.names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, a.files[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// DockerArchive returns the members of a classic docker-save tarball.
func dockerArchive(imgs []Image) (*archiveWriter, error) {
	a := &archiveWriter{}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for _, img := range imgs {
		b, err := Build(img)
		if err != nil {
			return nil, err
		}
		e := entry{Config: strings.TrimPrefix(Digest(b.Config), "sha256:") + ".json", RepoTags: nonNil(img.Names)}
		parent := ""
		for _, l := range b.Layers {
			// docker's v1 layer IDs are not content digests; any stable hex does.
			id := strings.TrimPrefix(Digest([]byte(parent+l.DiffID)), "sha256:")
			parent = id
			a.add(id+"/VERSION", []byte("1.0"))
			a.add(id+"/json", []byte(`{"id":"`+id+`"}`))
			a.add(id+"/layer.tar", l.Blob)
			e.Layers = append(e.Layers, id+"/layer.tar")
		}
		a.add(e.Config, b.Config)
		manifest = append(manifest, e)
	}
	if err := a.addJSON("manifest.json", manifest); err != nil {
		return nil, err
	}
	return a, nil
}

// WriteDockerArchive writes a docker-save tarball holding imgs.
func WriteDockerArchive(p string, imgs ...Image) error {
	return write(dockerArchive, imgs, (*archiveWriter).tarTo, p)
}

// WriteDockerDir writes the same members as WriteDockerArchive into a directory.
func WriteDockerDir(dir string, imgs ...Image) error {
	return write(dockerArchive, imgs, (*archiveWriter).dirTo, dir)
}

// ociLayout returns the members of an OCI image layout.
func ociLayout(imgs []Image) (*archiveWriter, error) {
	a := &archiveWriter{}
	a.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	var manifests []desc
	for _, img := range imgs {
		b, err := Build(img)
		if err != nil {
			return nil, err
		}
		for _, l := range b.Layers {
			a.add("blobs/sha256/"+strings.TrimPrefix(l.Digest, "sha256:"), l.Blob)
		}
		a.add("blobs/sha256/"+strings.TrimPrefix(Digest(b.Config), "sha256:"), b.Config)
		m := b.Manifest()
		a.add("blobs/sha256/"+strings.TrimPrefix(Digest(m), "sha256:"), m)
		d := desc{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: Digest(m), Size: len(m)}
		names := img.Names
		if len(names) == 0 {
			names = []string{""}
		}
		for _, n := range names {
			d := d
			if n != "" {
				tag := n[strings.LastIndex(n, ":")+1:]
				d.Annotations = map[string]string{"io.containerd.image.name": n, "org.opencontainers.image.ref.name": tag}
			}
			manifests = append(manifests, d)
		}
	}
	idx := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
	if err := a.addJSON("index.json", idx); err != nil {
		return nil, err
	}
	return a, nil
}

// WriteOCILayout writes an OCI image layout directory holding imgs.
func WriteOCILayout(dir string, imgs ...Image) error {
	return write(ociLayout, imgs, (*archiveWriter).dirTo, dir)
}

// WriteOCIArchive writes an OCI image layout as a tar file.
func WriteOCIArchive(p string, imgs ...Image) error {
	return write(ociLayout, imgs, (*archiveWriter).tarTo, p)
}

// write lays imgs out as layout's members and writes them to p with out
// (a tar file or a directory).
func write(layout func([]Image) (*archiveWriter, error), imgs []Image, out func(*archiveWriter, string) error, p string) error {
	a, err := layout(imgs)
	if err != nil {
		return err
	}
	return out(a, p)
}

func goarch() string { return runtime.GOARCH }

// WriteDockerOCIArchive writes the docker >= 25 form of docker save: an OCI
// layout whose manifest.json points at blobs/sha256/... members.
func WriteDockerOCIArchive(p string, imgs ...Image) error {
	a, err := ociLayout(imgs)
	if err != nil {
		return err
	}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for _, img := range imgs {
		b, err := Build(img)
		if err != nil {
			return err
		}
		e := entry{Config: "blobs/sha256/" + strings.TrimPrefix(Digest(b.Config), "sha256:"), RepoTags: nonNil(img.Names)}
		for _, l := range b.Layers {
			e.Layers = append(e.Layers, "blobs/sha256/"+strings.TrimPrefix(l.Digest, "sha256:"))
		}
		manifest = append(manifest, e)
	}
	if err := a.addJSON("manifest.json", manifest); err != nil {
		return err
	}
	return a.tarTo(p)
}
