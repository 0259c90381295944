package layers_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestImportRefusesFIFOs: a FIFO where import expects a file (a blob or
// index.json of a layout, or the archive itself) must be refused at once
// with one line naming it; opening it blocking would hang the import
// until somebody writes to it.
func TestImportRefusesFIFOs(t *testing.T) {
	img := oneLayer(imagetest.File("f", "data", 0o644))
	built, err := imagetest.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	layerBlob := "blobs/sha256/" + strings.TrimPrefix(built.Layers[0].Digest, "sha256:")
	for _, tc := range []struct {
		name   string
		member string // the member of the layout made a FIFO; "" for the archive itself
		want   string
	}{
		{"layer-blob", layerBlob, layerBlob + ": not a regular file (a FIFO)"},
		{"index", "index.json", "index.json"},
		{"archive", "", "not a regular file (a FIFO)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			if err := imagetest.WriteOCILayout(dir, img); err != nil {
				t.Fatal(err)
			}
			fifo := filepath.Join(dir, tc.member)
			if tc.member == "" {
				fifo = dir + ".tar"
			} else if err := os.Remove(fifo); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			src := dir
			if tc.member == "" {
				src = fifo
			}
			s := openStore(t)
			done := make(chan error, 1)
			go func() {
				_, err := s.Import(src, layers.ImportOptions{})
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("import of a layout with a FIFO at %s hangs", fifo)
				unblockFIFO(fifo, done)
				return
			}
			if err == nil {
				t.Fatal("imported")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), src) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line naming %s and %q", err, src, tc.want)
			}
		})
	}
}

// unblockFIFO keeps opening fifo for writing (and closing it at once, an
// EOF for the reader) until the import reports on done.
func unblockFIFO(fifo string, done <-chan error) {
	for {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Millisecond):
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
		}
	}
}
