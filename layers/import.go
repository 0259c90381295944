package layers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Progress shows the progress of long copies. Start begins one bar for total
// bytes (-1 when unknown); the bytes written to the returned writer advance
// it, and Close ends it. The command line passes a terminal progress bar;
// the library never draws anything itself.
type Progress interface {
	Start(label string, total int64) io.WriteCloser
}

// ImportOptions tunes Import.
type ImportOptions struct {
	// Name replaces the archive's own names; only for single-image archives.
	Name string
	// Progress, if set, shows per-layer progress.
	Progress Progress
	// Warn receives one line per skipped item (devices rootless, ...).
	Warn func(msg string)
	// Where, if set, names the source in messages instead of its path
	// (a pull's staging dir is named after the image it holds).
	Where string
}

// Format is an archive format known to Import and Export.
type Format string

const (
	FormatDockerArchive Format = "docker-archive"
	FormatOCIArchive    Format = "oci"     // OCI layout in a tar
	FormatOCIDir        Format = "oci-dir" // OCI layout directory
)

// DetectFormat tells a docker-save archive from an OCI layout (dir or tar).
// A docker >= 25 archive holds both; its manifest.json carries the tags, so
// it is read as docker-save.
func detectFormat(src source) (Format, error) {
	switch {
	case src.has("manifest.json"):
		return FormatDockerArchive, nil
	case src.has("oci-layout") || src.has("index.json"):
		return FormatOCIArchive, nil
	}
	return "", fmt.Errorf("import %s: not a docker-save archive or OCI layout (no manifest.json, oci-layout or index.json)", src.where())
}

// Import loads every image of a docker-save archive or an OCI layout (dir or
// tar). All digests are verified before anything becomes visible: on any
// error the store is left as it was.
func (s *Store) Import(path string, opts ImportOptions) ([]*Image, error) {
	if opts.Where == "" {
		return s.importFrom(path, opts, func(staging string) (source, error) { return openSource(path, staging) })
	}
	return s.importFrom(opts.Where, opts, func(staging string) (source, error) {
		src, err := openSource(path, staging)
		if err != nil {
			return nil, err
		}
		switch src := src.(type) {
		case *dirSource:
			src.dir = opts.Where
		case *tarSource:
			src.path = opts.Where
		}
		return src, nil
	})
}

// ImportReader imports the archive (a tar, possibly compressed) read from
// r, such as a pipe, naming it where in messages. The archive is spooled
// into the store's staging area first: the formats need random access.
func (s *Store) ImportReader(r io.Reader, where string, opts ImportOptions) ([]*Image, error) {
	return s.importFrom(where, opts, func(staging string) (source, error) {
		spool, err := os.CreateTemp(staging, "stdin-*")
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", where, err)
		}
		if _, err := io.Copy(spool, r); err != nil {
			spool.Close()
			return nil, fmt.Errorf("import %s: %w", where, err)
		}
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			spool.Close()
			return nil, fmt.Errorf("import %s: %w", where, err)
		}
		return openTarSource(where, spool, staging)
	})
}

func (s *Store) importFrom(path string, opts ImportOptions, open func(staging string) (source, error)) ([]*Image, error) {
	gc, err := s.lockShared()
	if err != nil {
		return nil, err
	}
	defer gc.unlock()
	staging, err := s.newStaging("import")
	if err != nil {
		return nil, err
	}
	defer removeTree(staging)

	src, err := open(staging)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	plans, err := parseSource(src, path)
	if err != nil {
		return nil, err
	}
	if opts.Name != "" {
		if len(plans) != 1 {
			return nil, fmt.Errorf("import %s: --name needs an archive with one image, this one has %d", path, len(plans))
		}
		name, err := NormalizeName(opts.Name)
		if err != nil {
			return nil, err
		}
		plans[0].names = []string{name}
	}
	ing := newIngest(s, staging, opts.Progress, opts.Warn)
	return ing.run(plans)
}

func parseSource(src source, path string) ([]*planImage, error) {
	format, err := detectFormat(src)
	if err != nil {
		return nil, err
	}
	var plans []*planImage
	if format == FormatDockerArchive {
		plans, err = parseDockerSave(src)
	} else {
		plans, err = parseOCILayout(src, defaultRepo(path))
	}
	if err != nil {
		return nil, err
	}
	if len(plans) == 0 {
		return nil, fmt.Errorf("import %s: the archive holds no image", path)
	}
	return plans, nil
}

var nonRepoChars = regexp.MustCompile(`[^a-z0-9._/-]+`)

// defaultRepo names images whose OCI layout gives only a tag ("latest"):
// the archive's file name without extensions, e.g. "app" for app.oci.tar.
func defaultRepo(path string) string {
	base := strings.ToLower(filepath.Base(filepath.Clean(path)))
	for _, ext := range []string{".gz", ".zst", ".tar", ".oci", ".tgz"} {
		base = strings.TrimSuffix(base, ext)
	}
	base = strings.Trim(nonRepoChars.ReplaceAllString(base, "-"), "-./")
	if base == "" {
		base = "imported"
	}
	return base
}

// isNotExist reports a missing member or file.
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
