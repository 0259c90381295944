package cow

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The tests name files by path; the engine takes directory descriptors.
// These wrappers open the directories (test dirs, nobody races them).

// withAt opens the directory of p and runs fn on p's name in it.
func withAt(p string, fn func(At) error) error {
	dir, err := unix.Open(filepath.Dir(p), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	return fn(At{Dir: dir, Name: filepath.Base(p)})
}

func (e *Engine) copyUpPaths(src, dst string, size int64) (st unix.Stat_t, err error) {
	err = withAt(src, func(s At) error {
		return withAt(dst, func(d At) error {
			st, err = e.CopyUp(s, d, size)
			return err
		})
	})
	return st, err
}

func (e *Engine) copyUpUnnamedPaths(src, dst string, size int64) (done bool, err error) {
	err = withAt(src, func(s At) error {
		return withAt(dst, func(d At) error {
			done, err = e.copyUpUnnamed(s, d, size)
			return err
		})
	})
	return done, err
}

func (e *Engine) stagePaths(dst string, replace bool, build func(tmp string) error) error {
	return withAt(dst, func(d At) error {
		return e.Stage(d, replace, func(tmp At) error {
			return build(filepath.Join(fdPath(tmp.Dir), tmp.Name))
		})
	})
}
