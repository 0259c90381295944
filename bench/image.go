package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// imageImport times one import + extract of a generated image (issue 4):
// tar -xf of the bare layer (native), umoci unpack of the OCI layout, or
// crun-lite import (of the OCI layout; crun-lite-docker: of the docker-save
// archive) into a fresh store. The command and a sync are timed, since
// crun-lite fsyncs what it extracts and tar does not. Then the regular
// files extracted are counted and summed.
func (e *env) imageImport(in *instance, which string) (float64, error) {
	img := e.ds.imageInput(which)
	out := filepath.Join(e.scratch, "import-"+in.m.name)
	if err := os.RemoveAll(out); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Join(out, "rootfs"), 0o755); err != nil {
		return 0, err
	}
	// Used dirs go to the trash, emptied between rounds (see settle).
	defer e.toTrash(out)
	src, argv, root := e.importCommand(in.m, img, out)
	// Every method starts with its input in the page cache.
	if err := warmInput(src); err != nil {
		return 0, err
	}
	unix.Sync()
	sec, err := timed(func() error {
		b, err := e.command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", argv[0], err, oneLine(string(b)))
		}
		unix.Sync()
		return nil
	})
	if err != nil {
		return sec, err
	}
	dir, err := root()
	if err != nil {
		return sec, err
	}
	files, bytes, err := regularFiles(dir)
	if err != nil {
		return sec, err
	}
	if files != img.Files || bytes != img.Bytes {
		return sec, checkf("%s holds %d files of %d bytes after import, want %d files of %d bytes", dir, files, bytes, img.Files, img.Bytes)
	}
	return sec, nil
}

// importCommand is what a method runs: its input, its argv and where the
// extracted tree ends up.
func (e *env) importCommand(m *method, img imageInput, out string) (string, []string, func() (string, error)) {
	fixed := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }
	switch {
	case m.kind == "native":
		dir := filepath.Join(out, "rootfs")
		return img.Layer, []string{"tar", "-xf", img.Layer, "-C", dir}, fixed(dir)
	case m.kind == "umoci":
		bundle := filepath.Join(out, "bundle")
		return img.OCI, []string{m.bin, "unpack", "--image", img.OCI + ":" + img.Name, bundle}, fixed(filepath.Join(bundle, "rootfs"))
	}
	store := filepath.Join(out, "store")
	src := img.OCI
	if m.name == "crun-lite-docker" {
		src = img.Docker
	}
	return src, []string{e.crunLite, "--root", store, "-q", "import", src}, func() (string, error) { return storeLayerDir(store) }
}

// storeLayerDir is the one extracted layer of a crun-lite store
// (layers/<chain>/diff, see package layers).
func storeLayerDir(store string) (string, error) {
	dirs, err := filepath.Glob(filepath.Join(store, "layers", "*", "diff"))
	if err != nil || len(dirs) != 1 {
		return "", checkf("%s: want one extracted layer, found %d (%v)", store, len(dirs), err)
	}
	return dirs[0], nil
}

// warmInput reads the input file, or every file of an input dir.
func warmInput(p string) error {
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		_, err = readAll(q)
		return err
	})
}

func regularFiles(dir string) (int, int64, error) {
	var n int
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		n++
		total += st.Size()
		return nil
	})
	return n, total, err
}
