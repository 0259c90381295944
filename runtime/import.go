package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/unionfsd/unionfsd/layers"
)

// RemoveImagesMapped is rmi for an unprivileged user with subordinate ids,
// run in the same kind of user namespace as ImportMapped (see there).
func RemoveImagesMapped(root string, refs []string) (handled bool, err error) {
	return runMapped(stageRmi, stageArgs{Root: root, Refs: refs})
}

// ImportMapped imports an image for an unprivileged user the way its
// rootless containers will see it: inside a user namespace that maps the
// user to root and the /etc/subuid and /etc/subgid ranges to ids 1 and up,
// as crun-lite run --rootless does. The layers then keep the image's owners
// (stored on disk as the subordinate ids) instead of all becoming the
// user's. It prints what the import command prints. handled is false when
// there is nothing to map (root, or no ranges or newuidmap): import
// directly then.
func ImportMapped(root, path, name string) (handled bool, err error) {
	return runMapped(stageImport, stageArgs{Path: path, Root: root, Name: name})
}

// runMapped runs a store stage in a user namespace with the caller's
// subordinate ids; handled is false when there is nothing to map.
func runMapped(stage string, a stageArgs) (handled bool, err error) {
	if os.Geteuid() == 0 {
		return false, nil
	}
	uidMap, gidMap := rootlessMaps(func(string) {})
	if len(uidMap) < 2 || len(gidMap) < 2 {
		return false, nil
	}
	// The stage streams warnings; its last other line is the error.
	errs := &lastLine{pass: os.Stderr}
	err = runStageInUserns(uidMap, gidMap, stage, a, os.Stdout, errs)
	if err != nil && errs.last != "" {
		return true, errors.New(errs.last)
	}
	if err != nil {
		return true, fmt.Errorf("%s in a user namespace with your subordinate ids: %w", stage, err)
	}
	return true, nil
}

// rmiStage is RemoveImagesMapped's process inside the user namespace.
func rmiStage(a stageArgs) int {
	s, err := layers.Open(a.Root)
	var keep map[string]bool
	if err == nil {
		keep, err = LayersInUse(a.Root)
	}
	for _, ref := range a.Refs {
		if err != nil {
			break
		}
		var res *layers.RemoveResult
		if res, err = s.RemoveKeeping(ref, keep); err == nil {
			for _, l := range res.Lines() {
				fmt.Println(l)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crun-lite:", err)
		return 1
	}
	return 0
}

// lastLine passes warning lines on and keeps the last other line.
type lastLine struct {
	pass io.Writer
	last string
	buf  []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if strings.HasPrefix(line, stageWarnPrefix) {
			fmt.Fprintln(l.pass, line)
		} else {
			l.last = strings.TrimPrefix(line, "crun-lite: ")
		}
	}
}

const stageWarnPrefix = "crun-lite: warning: "

// importStage is ImportMapped's process inside the user namespace.
func importStage(a stageArgs) int {
	s, err := layers.Open(a.Root)
	if err == nil {
		var imgs []*layers.Image
		imgs, err = s.Import(a.Path, layers.ImportOptions{Name: a.Name, Warn: func(m string) {
			fmt.Fprintln(os.Stderr, stageWarnPrefix+m)
		}})
		for _, img := range imgs {
			names := strings.Join(img.Names, ",")
			if names == "" {
				names = "<none>"
			}
			fmt.Printf("%s %s\n", img.ID, names)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crun-lite:", err)
		return 1
	}
	return 0
}
