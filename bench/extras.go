package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// extrasVersion versions the data added for the image-import and chown
// workloads. They have their own stamp (extras.json) so adding them did not
// force the rest of a cached data set to be regenerated.
const extrasVersion = 1

// chownDir is the chown -R workload's tree, in the bottom layer.
const chownDir = "chowntree"

// imageInput is one generated image: its uncompressed layer tar, the same
// image as an OCI layout (blob hard-linked to the tar) and as a docker-save
// archive, and what extracting it must give.
type imageInput struct {
	Name   string // "small" or "big"; also the tag
	Layer  string
	OCI    string
	Docker string
	Files  int   // regular files in the layer
	Bytes  int64 // their total size
}

func (ds *Dataset) imageInput(name string) imageInput {
	dir := filepath.Join(ds.Dir, "image", name)
	in := imageInput{Name: name, Layer: filepath.Join(dir, "layer.tar"), OCI: filepath.Join(dir, "oci"), Docker: filepath.Join(dir, "docker.tar")}
	if name == "big" {
		in.Files, in.Bytes = 1, ds.Scale.ImportBigBytes
		return in
	}
	in.Files = ds.Scale.ImportFiles
	for i := 0; i < in.Files; i++ {
		in.Bytes += int64(importFileSize(i))
	}
	return in
}

func importFileSize(i int) int { return (i*53)%4096 + 1 }

// chownFileSize spreads ChownBytes over ChownFiles files between half and
// one and a half times the mean.
func chownFileSize(s Scale, i int) int64 {
	mean := s.ChownBytes / int64(s.ChownFiles)
	return mean/2 + int64(i*7919)%mean
}

func chownPath(i int) string {
	return filepath.Join(chownDir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%03d", i%100))
}

// chownEntries is what find prints for the chown tree: root, dirs, files.
func chownEntries(s Scale) int { return 1 + (s.ChownFiles+99)/100 + s.ChownFiles }

// ensureExtras generates the extra inputs once per scale.
func (ds *Dataset) ensureExtras(logf func(string, ...any)) error {
	stamp := filepath.Join(ds.Dir, "extras.json")
	var m manifest
	if b, err := os.ReadFile(stamp); err == nil && json.Unmarshal(b, &m) == nil && m.Version == extrasVersion {
		return nil
	}
	start := time.Now()
	logf("generating the image-import and chown inputs in %s (once)", ds.Dir)
	for _, p := range []string{filepath.Join(ds.Dir, "image"), filepath.Join(ds.Bottom, chownDir)} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	for _, name := range []string{"small", "big"} {
		if err := ds.genImage(ds.imageInput(name)); err != nil {
			return fmt.Errorf("generate image %s: %w", name, err)
		}
	}
	if err := genChownTree(ds.Bottom, ds.Scale); err != nil {
		return err
	}
	b, _ := json.Marshal(manifest{Version: extrasVersion, Scale: ds.Scale, Created: time.Now()})
	logf("extra inputs ready in %v", time.Since(start).Round(time.Second))
	return os.WriteFile(stamp, b, 0o644)
}

func genChownTree(bottom string, s Scale) error {
	r := newRandReader(4242)
	for i := 0; i < s.ChownFiles; i++ {
		p := filepath.Join(bottom, chownPath(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeFrom(p, r, chownFileSize(s, i)); err != nil {
			return err
		}
	}
	return nil
}

func writeFrom(p string, r io.Reader, n int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, n); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(p, fixedTime, fixedTime)
}

// genImage writes the layer tar, then wraps it as an OCI layout and a
// docker-save archive (written here, not with layers/imagetest, because
// that builds every blob in memory and the big layer is 1 GiB).
func (ds *Dataset) genImage(in imageInput) error {
	if err := os.MkdirAll(filepath.Join(in.OCI, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	diff, size, err := writeLayerTar(in, ds.Scale)
	if err != nil {
		return err
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "created": fixedTime.Format(time.RFC3339),
		"config": map[string]any{"Cmd": []string{"/bin/true"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diff}},
	})
	if err := writeOCILayout(in, diff, size, config); err != nil {
		return err
	}
	return writeDockerArchive(in, diff, size, config)
}

// writeLayerTar writes the layer and returns its sha256 (hex) and size.
func writeLayerTar(in imageInput, s Scale) (string, int64, error) {
	f, err := os.Create(in.Layer)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	tw := tar.NewWriter(cw)
	add := func(hdr *tar.Header, body io.Reader) error {
		hdr.ModTime, hdr.Format = fixedTime, tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if body != nil {
			_, err := io.CopyN(tw, body, hdr.Size)
			return err
		}
		return nil
	}
	if in.Name == "big" {
		err = add(&tar.Header{Typeflag: tar.TypeDir, Name: "big/", Mode: 0o755}, nil)
		if err == nil {
			err = add(&tar.Header{Typeflag: tar.TypeReg, Name: "big/blob.bin", Mode: 0o644, Size: s.ImportBigBytes}, newRandReader(77))
		}
	} else {
		r := newRandReader(78)
		for i := 0; i < s.ImportFiles && err == nil; i++ {
			dir := fmt.Sprintf("usr/share/d%03d/", i/100)
			if i%100 == 0 {
				if err = add(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, nil); err != nil {
					break
				}
			}
			err = add(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sf%03d", dir, i%100), Mode: 0o644, Size: int64(importFileSize(i))}, r)
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return "", 0, fmt.Errorf("write %s: %w", in.Layer, err)
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, f.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeBlob(oci string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	return d, os.WriteFile(filepath.Join(oci, "blobs", "sha256", d), data, 0o644)
}

type ociDesc struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func writeOCILayout(in imageInput, diff string, size int64, config []byte) error {
	if err := os.Link(in.Layer, filepath.Join(in.OCI, "blobs", "sha256", diff)); err != nil {
		return err
	}
	cd, err := writeBlob(in.OCI, config)
	if err != nil {
		return err
	}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": ociDesc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: "sha256:" + cd, Size: int64(len(config))},
		"layers": []ociDesc{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: "sha256:" + diff, Size: size}},
	})
	md, err := writeBlob(in.OCI, man)
	if err != nil {
		return err
	}
	idx, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []ociDesc{{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: "sha256:" + md, Size: int64(len(man)),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": in.Name, "io.containerd.image.name": "bench:" + in.Name}}},
	})
	if err := os.WriteFile(filepath.Join(in.OCI, "index.json"), idx, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(in.OCI, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func writeDockerArchive(in imageInput, diff string, size int64, config []byte) error {
	f, err := os.Create(in.Docker)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	cfgSum := sha256.Sum256(config)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	man, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"bench:" + in.Name}, "Layers": []string{diff + "/layer.tar"}}})
	for _, m := range []struct {
		name string
		data []byte
	}{{cfgName, config}, {"manifest.json", man}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: fixedTime}); err != nil {
			return err
		}
		if _, err := tw.Write(m.data); err != nil {
			return err
		}
	}
	layer, err := os.Open(in.Layer)
	if err != nil {
		return err
	}
	defer layer.Close()
	if err := tw.WriteHeader(&tar.Header{Name: diff + "/layer.tar", Mode: 0o644, Size: size, ModTime: fixedTime}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, layer); err != nil {
		return fmt.Errorf("write %s: %w", in.Docker, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
