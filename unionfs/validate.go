package unionfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/whiteout"
)

// Validate checks that the layer dirs of c can form a union and makes every
// path absolute with symlinks resolved, so the later checks and the mount
// agree on what each path is. With an Upper and no Work it sets Work to
// <Upper>/DefaultWorkName. A missing Work dir is created (mode 0700), but
// only after every other check passed, so bad input changes nothing.
//
// Errors read "<path>: <cause>" and wrap the system error when there is one.
// Validate may be called again on a validated config.
func (c *Config) Validate() error {
	if len(c.Lowers) == 0 && c.Upper == "" {
		return errors.New("no layers: give at least one lower dir or an upper dir")
	}
	if c.Work != "" && c.Upper == "" {
		return fmt.Errorf("%s: workdir given without an upper dir", c.Work)
	}
	lowers := make([]string, len(c.Lowers))
	for i, l := range c.Lowers {
		p, err := checkLayerDir(l, "lower dir")
		if err != nil {
			return err
		}
		lowers[i] = p
	}
	if c.Upper == "" {
		c.Lowers = lowers
		return nil
	}
	upper, err := checkUpperDir(c.Upper, lowers)
	if err != nil {
		return err
	}
	work, err := prepareWorkDir(c.Work, upper, lowers)
	if err != nil {
		return err
	}
	c.Lowers, c.Upper, c.Work = lowers, upper, work
	return nil
}

// checkLayerDir checks that p is an existing, readable and searchable dir and
// returns its absolute, symlink-free path.
func checkLayerDir(p, role string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty %s path", role)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", p, role, err)
	}
	if err := checkDir(abs); err != nil {
		return "", fmt.Errorf("%s: %s: %w", abs, role, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", abs, role, unwrapPathError(err))
	}
	return real, nil
}

// checkDir reports why p cannot serve as a layer dir, or nil.
func checkDir(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return fmt.Errorf("not searchable: %w", err)
	}
	// Opening and reading an entry is the real test: access(2) does not know
	// about FUSE mounts without allow_other, LSMs or odd filesystems.
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("not readable: %w", unwrapPathError(err))
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("not readable: %w", unwrapPathError(err))
	}
	return nil
}

// checkUpperDir checks the upper dir: a writable layer dir that neither
// contains nor sits inside a lower dir (a write through the union would then
// change a lower layer, or a layer would show inside itself).
func checkUpperDir(p string, lowers []string) (string, error) {
	upper, err := checkLayerDir(p, "upper dir")
	if err != nil {
		return "", err
	}
	if err := unix.Access(upper, unix.W_OK); err != nil {
		return "", fmt.Errorf("%s: upper dir: not writable: %w", upper, err)
	}
	for _, l := range lowers {
		switch {
		case upper == l:
			return "", fmt.Errorf("%s: upper dir is also a lower dir", upper)
		case isWithin(upper, l):
			return "", fmt.Errorf("%s: upper dir is inside lower dir %s", upper, l)
		case isWithin(l, upper):
			return "", fmt.Errorf("%s: lower dir is inside upper dir %s", l, upper)
		}
	}
	return upper, nil
}

// prepareWorkDir checks the workdir (defaulting it inside upper), creates it
// when missing and returns its absolute, symlink-free path.
func prepareWorkDir(p, upper string, lowers []string) (string, error) {
	if p == "" {
		p = filepath.Join(upper, DefaultWorkName)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: workdir: %w", p, err)
	}
	// Check where it would go before creating it: a bad workdir must not
	// leave a new dir behind (least of all inside a lower layer).
	if err := checkWorkPlace(abs, upper, lowers); err != nil {
		return "", err
	}
	if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
		// A new dir lands on its parent's filesystem.
		if err := sameFilesystem(abs, filepath.Dir(abs), upper); err != nil {
			return "", err
		}
		if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%s: workdir: cannot create: %w", abs, unwrapPathError(err))
		}
	}
	work, err := checkLayerDir(abs, "workdir")
	if err != nil {
		return "", err
	}
	// The path may have been a symlink: check the real place again.
	if err := checkWorkPlace(work, upper, lowers); err != nil {
		return "", err
	}
	if err := unix.Access(work, unix.W_OK); err != nil {
		return "", fmt.Errorf("%s: workdir: not writable: %w", work, err)
	}
	return work, sameFilesystem(work, work, upper)
}

// checkWorkPlace rejects workdirs that overlap a layer. A workdir inside the
// upper is fine only under a reserved ".wh..wh." name, which the union hides;
// anywhere else copy-up temp files would show in the merged view.
func checkWorkPlace(work, upper string, lowers []string) error {
	if real, err := filepath.EvalSymlinks(filepath.Dir(work)); err == nil {
		work = filepath.Join(real, filepath.Base(work))
	}
	switch {
	case work == upper:
		return fmt.Errorf("%s: workdir is the upper dir; it must be a separate dir", work)
	case isWithin(upper, work):
		return fmt.Errorf("%s: workdir contains upper dir %s", work, upper)
	case isWithin(work, upper):
		first := strings.SplitN(strings.TrimPrefix(work, upper+"/"), "/", 2)[0]
		if !strings.HasPrefix(first, whiteout.MetaPrefix) {
			return fmt.Errorf("%s: workdir is inside upper dir %s and would show in the union "+
				"(put it beside the upper dir)", work, upper)
		}
	}
	for _, l := range lowers {
		if isWithin(work, l) || isWithin(l, work) {
			return fmt.Errorf("%s: workdir overlaps lower dir %s", work, l)
		}
	}
	return nil
}

// sameFilesystem checks that the workdir work (found on probe's filesystem)
// and upper share a filesystem: copy-up renames finished files from work into
// upper, and rename(2) cannot cross filesystems.
func sameFilesystem(work, probe, upper string) error {
	var ws, us unix.Stat_t
	if err := unix.Stat(probe, &ws); err != nil {
		return fmt.Errorf("%s: workdir: %w", work, err)
	}
	if err := unix.Stat(upper, &us); err != nil {
		return fmt.Errorf("%s: upper dir: %w", upper, err)
	}
	if ws.Dev != us.Dev {
		return fmt.Errorf("%s: workdir is on another filesystem than upper dir %s", work, upper)
	}
	return nil
}

// isWithin reports whether p is dir or lies below it; both are clean
// absolute paths.
func isWithin(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// unwrapPathError drops the op and path of an *os.PathError, because our
// messages already name the path.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
