package layers_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// The import benchmarks mirror the bench's import-small workload: one
// uncompressed layer of many small files (100 per directory, sizes 1..4096).
// LAYERS_BENCH_FILES sets the file count (default 2000; the bench uses
// 20000) and LAYERS_BENCH_DIR the filesystem to write to (default: the test
// temp dir). Profile with e.g.
//
//	go test -run '^$' -bench ImportSmall -benchtime 5x -cpuprofile cpu.out ./layers/

func benchFiles(b *testing.B) int {
	n := 2000
	if v := os.Getenv("LAYERS_BENCH_FILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("LAYERS_BENCH_FILES=%q: want a positive number", v)
		}
	}
	return n
}

func benchDir(b *testing.B) string {
	base := os.Getenv("LAYERS_BENCH_DIR")
	if base == "" {
		return b.TempDir()
	}
	d, err := os.MkdirTemp(base, "layers-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// smallFilesLayer is the bench's import-small layer, scaled to n files.
func smallFilesLayer(n int) imagetest.Layer {
	var l imagetest.Layer
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096/16+1)
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("usr/share/d%03d/", i/100)
		if i%100 == 0 {
			l.Entries = append(l.Entries, imagetest.Dir(dir, 0o755))
		}
		size := (i*53)%4096 + 1
		l.Entries = append(l.Entries, imagetest.BigFile(fmt.Sprintf("%sf%03d", dir, i%100), content[i%16:i%16+size], 0o644))
	}
	return l
}

func BenchmarkImportSmallFiles(b *testing.B) {
	dir := benchDir(b)
	oci := filepath.Join(dir, "oci")
	img := imagetest.Image{Names: []string{"bench:small"}, Layers: []imagetest.Layer{smallFilesLayer(benchFiles(b))}}
	if err := imagetest.WriteOCILayout(oci, img); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := layers.Open(filepath.Join(dir, "store"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Import(oci, layers.ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractSmallFiles(b *testing.B) {
	dir := benchDir(b)
	tarData, err := imagetest.TarEntries(smallFilesLayer(benchFiles(b)).Entries)
	if err != nil {
		b.Fatal(err)
	}
	opts := layers.ExtractOptions{AsRoot: os.Geteuid() == 0}
	b.SetBytes(int64(len(tarData)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "x"+strconv.Itoa(i))
		if err := os.Mkdir(out, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := layers.Extract(bytes.NewReader(tarData), out, opts); err != nil {
			b.Fatal(err)
		}
	}
}
