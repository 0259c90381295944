package layers

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression of a layer blob, found by magic bytes (never trusted from a
// media type: skopeo, docker and hand-made archives disagree often enough).
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "none"
}

// ParseCompression reads "gzip", "zstd" or "none".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	case "none", "":
		return Uncompressed, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want gzip, zstd or none)", s)
}

// layerMediaType is the OCI layer media type for this compression.
func (c Compression) layerMediaType() string {
	switch c {
	case Gzip:
		return v1.MediaTypeImageLayerGzip
	case Zstd:
		return v1.MediaTypeImageLayerZstd
	}
	return v1.MediaTypeImageLayer
}

var (
	gzipMagic  = []byte{0x1f, 0x8b}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	bzip2Magic = []byte("BZh")
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// detectCompression peeks at the start of br.
func detectCompression(br *bufio.Reader) (Compression, error) {
	head, err := br.Peek(6)
	if err != nil && err != io.EOF {
		return 0, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip, nil
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd, nil
	case bytes.HasPrefix(head, bzip2Magic):
		return 0, fmt.Errorf("bzip2-compressed layer is not supported")
	case bytes.HasPrefix(head, xzMagic):
		return 0, fmt.Errorf("xz-compressed layer is not supported")
	}
	return Uncompressed, nil
}

// decompress returns a reader of the uncompressed stream of r and what it found.
func decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	c, err := detectCompression(br)
	if err != nil {
		return nil, 0, err
	}
	switch c {
	case Gzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("gzip: %w", err)
		}
		return &errPrefixReader{r: zr, prefix: "gzip", close: zr.Close}, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, c, fmt.Errorf("zstd: %w", err)
		}
		return &errPrefixReader{r: zr, prefix: "zstd", close: func() error { zr.Close(); return nil }}, c, nil
	}
	return io.NopCloser(br), c, nil
}

// errPrefixReader names the codec in its errors, so a corrupt blob reads as
// "gzip: invalid checksum" rather than a bare "invalid checksum".
type errPrefixReader struct {
	r      io.Reader
	prefix string
	close  func() error
}

func (e *errPrefixReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && !strings.HasPrefix(err.Error(), e.prefix+":") {
		err = fmt.Errorf("%s: %w", e.prefix, err)
	}
	return n, err
}

func (e *errPrefixReader) Close() error { return e.close() }

// compressWriter wraps w in a compressor.
func compressWriter(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		return pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(2))
	}
	return nopWriteCloser{w}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
