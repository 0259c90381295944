package layers_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/layers"
)

// TestDiffTarWhiteoutLinks writes the diff of an upper whose whiteouts are
// hard links of one file (as unionfsd makes them) next to a real hard link
// pair: each whiteout must come out as an empty file of its own, while the
// real pair stays a file and a link to it.
func TestDiffTarWhiteoutLinks(t *testing.T) {
	upper := t.TempDir()
	shared := filepath.Join(t.TempDir(), "whiteout")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(shared, nil, 0))
	must(os.Mkdir(filepath.Join(upper, "d"), 0o755))
	for _, wh := range []string{".wh.a", ".wh.b", "d/.wh.c"} {
		must(os.Link(shared, filepath.Join(upper, wh)))
	}
	must(os.WriteFile(filepath.Join(upper, "f"), []byte("data"), 0o644))
	must(os.Link(filepath.Join(upper, "f"), filepath.Join(upper, "g")))

	var buf bytes.Buffer
	must(layers.WriteDiffTar(upper, nil, &buf))
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		got[hdr.Name] = hdr
	}
	for _, wh := range []string{".wh.a", ".wh.b", "d/.wh.c"} {
		h := got[wh]
		if h == nil || h.Typeflag != tar.TypeReg || h.Size != 0 || h.Linkname != "" {
			t.Errorf("whiteout %s: %+v, want an empty regular file", wh, h)
		}
	}
	if h := got["f"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != 4 {
		t.Errorf("f: %+v, want the file", h)
	}
	if h := got["g"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "f" {
		t.Errorf("g: %+v, want a hard link to f", h)
	}
}

// TestDiffTarLongNameWhiteout: a name too long for ".wh." is deleted in the
// upper with a 0/0 device (unionfsd does so even in the OCI format); the
// layer still says it the OCI way, with a ".wh." name longer than NAME_MAX,
// which tar holds fine.
func TestDiffTarLongNameWhiteout(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root here")
	}
	upper := t.TempDir()
	long := strings.Repeat("n", 255)
	if err := unix.Mknod(filepath.Join(upper, long), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := layers.WriteDiffTar(upper, nil, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag != tar.TypeReg || hdr.Size != 0 {
			t.Errorf("%s: type %c size %d, want an empty file", hdr.Name, hdr.Typeflag, hdr.Size)
		}
	}
	if len(names) != 1 || names[0] != ".wh."+long {
		t.Errorf("tar names %q, want only .wh. + the 255-byte name", names)
	}
}

// TestDiffTarForgedMetacopy: a commit or `diff --tar` of an upper whose
// writer forged metacopy pointers must never put a file from outside the
// lower layers into the layer. Before, user.unionfsd.metacopy was followed
// to any absolute path: a user who owns an upper (crun-lite commit --upper
// DIR) could have root copy /etc/shadow into an image.
func TestDiffTarForgedMetacopy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: trusted.* xattrs")
	}
	const secret = "TOP-SECRET-HOST-DATA"
	base := t.TempDir()
	host := filepath.Join(base, "host-secret")
	lower := filepath.Join(base, "lower")
	for _, d := range []string{lower} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(host, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "data"), []byte("lower data!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(lower, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		xattr, value string
		want         string // file content in the tar, or "" for an error
	}{
		{"user.unionfsd.metacopy", host, ""},
		{"user.unionfsd.metacopy", "data", ""},
		{"trusted.unionfsd.metacopy", host, ""},
		{"trusted.unionfsd.metacopy", "../host-secret", ""},
		{"trusted.unionfsd.metacopy", "link/host-secret", ""},
		{"trusted.unionfsd.metacopy", "data", "lower data!"},
	} {
		upper := t.TempDir()
		f := filepath.Join(upper, "f")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, int64(len("lower data!"))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(f, c.xattr, []byte(c.value), 0); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		err := layers.WriteDiffTar(upper, []string{lower}, &buf)
		if strings.Contains(buf.String(), secret[:8]) {
			t.Errorf("%s=%s: the host file went into the layer", c.xattr, c.value)
		}
		if c.want == "" {
			if err == nil {
				t.Errorf("%s=%s: no error; a pointer out of the lowers must fail the commit", c.xattr, c.value)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s=%s: %v", c.xattr, c.value, err)
		} else if !strings.Contains(buf.String(), c.want) {
			t.Errorf("%s=%s: the layer lacks the lower data", c.xattr, c.value)
		}
	}
	// Without the lowers, even a good pointer has no data: an error, not
	// an empty file.
	upper := t.TempDir()
	f := filepath.Join(upper, "f")
	if err := os.WriteFile(f, []byte("xx"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(f, "trusted.unionfsd.metacopy", []byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if err := layers.WriteDiffTar(upper, nil, io.Discard); err == nil {
		t.Error("a metacopy entry with no lowers given: no error")
	}
}

// TestLongWhiteoutRoundTrip: the layer a commit writes for a deleted
// 255-byte name (".wh." + the name, longer than NAME_MAX) extracts again,
// as a 0/0 device under the name, and writes out the same entry.
func TestLongWhiteoutRoundTrip(t *testing.T) {
	long := strings.Repeat("n", 255)
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "d/.wh." + long, Mode: 0o600, Format: tar.FormatPAX},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := layers.Extract(bytes.NewReader(in.Bytes()), dir, layers.ExtractOptions{AsRoot: os.Geteuid() == 0}); err != nil {
		t.Fatalf("extract: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "d", long), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("extracted whiteout: %v, mode %o rdev %d; want a 0/0 device", err, st.Mode, st.Rdev)
	}
	var out bytes.Buffer
	if err := layers.WriteDiffTar(dir, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "d/.wh."+long) {
		t.Errorf("the written layer lacks d/.wh.%s...", long[:8])
	}
}
