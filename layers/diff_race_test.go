package layers_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers"
)

// TestDiffTarSymlinkSwapRace is the attack on commit of a live container:
// the container keeps exchanging a dir of its upper with a symlink to a
// 0700 host dir holding a secret while the diff walk runs again and again.
// Whatever the walk produces (a tar, or an error part way), the secret
// must never be in it.
func TestDiffTarSymlinkSwapRace(t *testing.T) {
	const secret = "HOST-SECRET-0xdeadbeef"
	host := filepath.Join(t.TempDir(), "private")
	upper := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(host, 0o700))
	must(os.WriteFile(filepath.Join(host, "f"), []byte(secret), 0o600))
	must(os.Mkdir(filepath.Join(upper, "d"), 0o755))
	must(os.WriteFile(filepath.Join(upper, "d", "f"), []byte("container data"), 0o644))
	must(os.Symlink(host, filepath.Join(upper, "s")))

	// d becomes the symlink and back, atomically each time.
	defer testsupport.KeepExchanging(t, filepath.Join(upper, "d"), filepath.Join(upper, "s"))()

	deadline := time.Now().Add(3 * time.Second)
	runs, clean := 0, 0
	for ; time.Now().Before(deadline) || runs < 200; runs++ {
		var buf bytes.Buffer
		err := layers.WriteDiffTar(upper, nil, &buf)
		if err == nil {
			clean++
		}
		if bytes.Contains(buf.Bytes(), []byte(secret)) {
			t.Fatalf("run %d: the host file's content is in the diff tar (walk error: %v)", runs, err)
		}
		checkTarNames(t, buf.Bytes())
	}
	t.Logf("%d walks, %d without error", runs, clean)
	if clean == 0 {
		t.Errorf("no walk finished: the swap should make some fail, not all")
	}
}

// checkTarNames reads what there is of a (possibly cut) tar and fails on
// any entry that is not d, s or d/f.
func checkTarNames(t *testing.T, data []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || err != nil {
			return
		}
		switch strings.TrimSuffix(hdr.Name, "/") {
		case "d", "s", "d/f", "s/f":
		default:
			t.Fatalf("unexpected entry %q in the diff tar", hdr.Name)
		}
		if strings.HasPrefix(hdr.Name, "s/") || hdr.Name == "d/f" {
			body, _ := io.ReadAll(tr)
			if string(body) != "container data" && len(body) > 0 {
				t.Fatalf("%s has %q, not the container's data", hdr.Name, body)
			}
		}
	}
}
