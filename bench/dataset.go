package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// genVersion changes whenever the generator makes different data, so an
// old cached data set is rebuilt instead of silently reused.
const genVersion = 3

// Dataset is the generated, cached input of every run: three layers (l1 at
// the bottom), the merged view copied into a plain dir, and a tarball.
type Dataset struct {
	Scale  Scale
	Dir    string   // <cache>/<scale>
	Layers []string // top first, as lowerdir= wants them: l3, l2, l1
	Bottom string   // l1
	Native string   // the merged view as a plain dir
	Tar    string   // the untar workload's input
}

type manifest struct {
	Version int
	Scale   Scale
	Created time.Time
}

// Paths inside the layers (and the merged view).
const (
	treeDir    = "tree"
	bigDirName = "bigdir"
	seqFile    = "big/seq.bin"
	fioLower   = "fio/lower.bin"
	appendFile = "append/file.bin"
	rmTreeDir  = "rmtree"
	copyUpDir  = "copyup" // copyup/<set>/<size>/fNNN
)

// fixedTime is every generated file's mtime, so generated data is identical
// from run to run and from machine to machine.
var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func datasetPaths(cache string, s Scale) *Dataset {
	dir := filepath.Join(cache, s.Name)
	l := filepath.Join(dir, "layers")
	return &Dataset{
		Scale:  s,
		Dir:    dir,
		Layers: []string{filepath.Join(l, "l3"), filepath.Join(l, "l2"), filepath.Join(l, "l1")},
		Bottom: filepath.Join(l, "l1"),
		Native: filepath.Join(dir, "native"),
		Tar:    filepath.Join(dir, "untar.tar"),
	}
}

// copyUpPath names copy-up file i of the given size in set a (timed
// without sync) or b (timed with the sync).
func copyUpPath(set string, size int64, i int) string {
	return filepath.Join(copyUpDir, set, sizeLabel(size), fmt.Sprintf("f%03d", i))
}

// openDataset returns the cached data set for s, generating it first when
// it is missing or was made by another generator version.
func openDataset(cache string, s Scale, logf func(string, ...any)) (*Dataset, error) {
	ds := datasetPaths(cache, s)
	if m, err := readManifest(ds.Dir); err == nil && m.Version == genVersion && m.Scale.Name == s.Name {
		return ds, ds.ensureExtras(logf)
	}
	start := time.Now()
	logf("generating the %s data set in %s (once; later runs reuse it)", s.Name, ds.Dir)
	if err := os.RemoveAll(ds.Dir); err != nil {
		return nil, fmt.Errorf("remove old data set %s: %w", ds.Dir, err)
	}
	if err := ds.generate(); err != nil {
		return nil, err
	}
	if err := writeManifest(ds.Dir, manifest{Version: genVersion, Scale: s, Created: time.Now()}); err != nil {
		return nil, err
	}
	logf("data set ready in %v", time.Since(start).Round(time.Second))
	return ds, ds.ensureExtras(logf)
}

func readManifest(dir string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// writeManifest is the last step of generation: a data set without it is
// incomplete and gets regenerated.
func writeManifest(dir string, m manifest) error {
	b, _ := json.MarshalIndent(m, "", "  ")
	return os.WriteFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o644)
}

func (ds *Dataset) generate() error {
	s := ds.Scale
	l3, l2, l1 := ds.Layers[0], ds.Layers[1], ds.Layers[2]
	steps := []func() error{
		func() error { return genTree(l1, l2, l3, s) },
		func() error { return genBigDir(l1, l2, s.BigDirEntries) },
		func() error { return genBigFile(filepath.Join(l1, seqFile), s.SeqBytes, 1) },
		func() error { return genBigFile(filepath.Join(l1, fioLower), s.FioFileBytes, 2) },
		func() error { return genBigFile(filepath.Join(l1, appendFile), s.AppendBytes, 3) },
		func() error { return genCopyUps(l1, s) },
		func() error { return genSmallFiles(filepath.Join(l1, rmTreeDir), s.RmFiles, 100, "rm") },
		func() error { return genTar(ds.Tar, s.TarFiles) },
		ds.genNative,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	unix.Sync()
	return nil
}

// genTree writes the small-file tree spread over three layers, with
// shadowed names: per dir, n = TreeFilesPerDir/2 gives l1 names [0,1.2n),
// l2 [n,1.6n), l3 [1.5n,2n).
func genTree(l1, l2, l3 string, s Scale) error {
	n := s.TreeFilesPerDir / 2
	ranges := []struct {
		layer    string
		from, to int
	}{{l1, 0, n * 12 / 10}, {l2, n, n * 16 / 10}, {l3, n * 15 / 10, 2 * n}}
	for d := 0; d < s.TreeDirs; d++ {
		for li, r := range ranges {
			dir := filepath.Join(r.layer, treeDir, fmt.Sprintf("d%03d", d))
			for i := r.from; i < r.to; i++ {
				name := filepath.Join(dir, fmt.Sprintf("f%04d", i))
				size := (i*37 + d*11 + li*5) % 8192
				if err := writePatterned(name, size, fmt.Sprintf("l%d %s", 3-li, name)); err != nil {
					return err
				}
			}
			if err := os.Chtimes(dir, fixedTime, fixedTime); err != nil {
				return err
			}
		}
	}
	return nil
}

// genBigDir writes one dir of n entries merged from two layers: l1 has the
// first 60%, l2 the last 50% (so 10% are in both).
func genBigDir(l1, l2 string, n int) error {
	for _, r := range []struct {
		layer    string
		from, to int
	}{{l1, 0, n * 6 / 10}, {l2, n * 5 / 10, n}} {
		for i := r.from; i < r.to; i++ {
			name := filepath.Join(r.layer, bigDirName, fmt.Sprintf("e%05d", i))
			if err := writePatterned(name, i%200, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// genCopyUps writes CopyUpSmallCount files of the smallest size and one of
// each other size, in two sets: a is written without sync, b with it.
func genCopyUps(l1 string, s Scale) error {
	for si, set := range []string{"a", "b"} {
		for zi, size := range s.CopyUpBytes {
			count := 1
			if zi == 0 {
				count = s.CopyUpSmallCount
			}
			for i := 0; i < count; i++ {
				seed := uint64(100 + si*10 + zi*1000 + i)
				if err := genBigFile(filepath.Join(l1, copyUpPath(set, size, i)), size, seed); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// genSmallFiles writes n small files in dirs of perDir files.
func genSmallFiles(root string, n, perDir int, tag string) error {
	for i := 0; i < n; i++ {
		name := filepath.Join(root, fmt.Sprintf("d%03d", i/perDir), fmt.Sprintf("f%04d", i%perDir))
		if err := writePatterned(name, (i*53)%4096, tag+name); err != nil {
			return err
		}
	}
	return nil
}

// writePatterned writes size bytes of text repeating seed.
func writePatterned(name string, size int, seed string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	buf := make([]byte, size)
	pat := []byte(seed + "\n")
	for i := range buf {
		buf[i] = pat[i%len(pat)]
	}
	if err := os.WriteFile(name, buf, 0o644); err != nil {
		return err
	}
	return os.Chtimes(name, fixedTime, fixedTime)
}

// genBigFile writes size pseudo-random bytes (incompressible, so no
// filesystem can shortcut them) from seed.
func genBigFile(name string, size int64, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, newRandReader(seed), size); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(name, fixedTime, fixedTime)
}

// randReader yields a deterministic byte stream from a seeded PCG.
type randReader struct{ r *rand.PCG }

func newRandReader(seed uint64) *randReader {
	return &randReader{rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)}
}

func (r *randReader) Read(p []byte) (int, error) {
	n := len(p) &^ 7
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.r.Uint64())
	}
	if n == 0 {
		v := r.r.Uint64()
		for i := range p {
			p[i] = byte(v >> (8 * i))
		}
		return len(p), nil
	}
	return n, nil
}

// genTar writes the untar workload's tarball: n small files, 100 a dir.
func genTar(name string, n int) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(buf)
	bw := tw
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("t%03d/", i/100)
		if i%100 == 0 {
			if err := bw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: fixedTime}); err != nil {
				f.Close()
				return err
			}
		}
		size := (i * 53) % 4096
		body := make([]byte, size)
		for j := range body {
			body[j] = byte('a' + (i+j)%26)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sf%03d", dir, i%100), Mode: 0o644, Size: int64(size), ModTime: fixedTime}
		if err := bw.WriteHeader(hdr); err != nil {
			f.Close()
			return err
		}
		if _, err := bw.Write(body); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := buf.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tarEntries is what untar must leave: the files and their dirs.
func tarEntries(n int) int { return n + (n+99)/100 }

// genNative copies the merged view into a plain dir, bottom layer first so
// upper layers' files replace lower ones (the data set has no whiteouts).
func (ds *Dataset) genNative() error {
	if err := os.MkdirAll(ds.Native, 0o755); err != nil {
		return err
	}
	for i := len(ds.Layers) - 1; i >= 0; i-- {
		if err := copyTree(ds.Layers[i], ds.Native); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies src's contents into dst (cp -a semantics).
func copyTree(src, dst string) error {
	out, err := exec.Command("cp", "-a", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

// fingerprint hashes what a union must never change in a layer: every
// entry's path, type, mode, owner, size and mtime, the whole content of files up
// to 64 KiB and the first and last 64 KiB of bigger ones.
func fingerprint(root string) (string, error) {
	h := sha256.New()
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", root, err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		var st os.FileInfo
		if st, err = os.Lstat(p); err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s\x00%v\x00%d\x00%d\n", rel, st.Mode(), st.Size(), st.ModTime().UnixNano())
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			fmt.Fprintf(h, "%d:%d\n", sys.Uid, sys.Gid) // chown -R must not reach a layer
		}
		if st.Mode().IsRegular() {
			if err := hashEnds(h, p, st.Size()); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashEnds(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("fingerprint %s: %w", p, err)
	}
	defer f.Close()
	const part = 64 << 10
	if size <= 2*part {
		_, err = io.Copy(w, f)
	} else {
		if _, err = io.CopyN(w, f, part); err == nil {
			_, err = io.Copy(w, io.NewSectionReader(f, size-part, part))
		}
	}
	if err != nil {
		return fmt.Errorf("fingerprint %s: %w", p, err)
	}
	return nil
}

// layerFingerprints fingerprints sub (a path inside the layers, "" for all
// of them) in every layer.
func (ds *Dataset) layerFingerprints(sub string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range ds.Layers {
		p := filepath.Join(l, sub)
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			continue
		}
		fp, err := fingerprint(p)
		if err != nil {
			return nil, err
		}
		out[filepath.Join(filepath.Base(l), sub)] = fp
	}
	return out, nil
}

// changedLayers names the entries of after that differ from before.
func changedLayers(before, after map[string]string) []string {
	var bad []string
	for k, v := range before {
		if after[k] != v {
			bad = append(bad, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	return bad
}
