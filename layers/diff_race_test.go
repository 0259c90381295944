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

// TestDiffTarFileRewrittenWhileRead is commit --pause=false of a container
// that truncates and rewrites a small file over and over: every walk must
// finish, and the file goes in whole as some version it had (the size in
// its header is the size read), never as an error or a zero-padded mix.
func TestDiffTarFileRewrittenWhileRead(t *testing.T) {
	upper := t.TempDir()
	counter := filepath.Join(upper, "n")
	if err := os.WriteFile(counter, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// What `echo $i > /n` does: truncate, then write.
			f, err := os.OpenFile(counter, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				continue
			}
			f.WriteString(strings.Repeat("x", i%4096) + "\n")
			f.Close()
		}
	}()
	defer func() { close(stop); <-done }()
	for run := 0; run < 2000; run++ {
		var buf bytes.Buffer
		if err := layers.WriteDiffTar(upper, nil, &buf); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		tr := tar.NewReader(&buf)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			data, _ := io.ReadAll(tr)
			if hdr.Name == "n" && len(data) > 0 && bytes.IndexByte(data, 0) >= 0 {
				t.Fatalf("run %d: /n has zero bytes in it: %q", run, data)
			}
		}
	}
}
