package unionfs

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestParallelWriters runs writers at once on one mount (run it with -race):
// each works in its own dir, and all of them copy up the same lower files
// at the same time. Every write must land exactly once.
func TestParallelWriters(t *testing.T) {
	tu := newLayers(t, 1)
	const workers, files = 8, 20
	for i := 0; i < files; i++ {
		writeFile(t, fmt.Sprintf("%s/shared/f%d", tu.lowers[0], i), "base\n")
	}
	tu.mount(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			errs <- parallelWorker(tu, w, files)
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := 0; i < files; i++ {
		b, err := os.ReadFile(tu.m(fmt.Sprintf("shared/f%d", i)))
		must(t, err)
		if got := strings.Count(string(b), "\n"); got != workers+1 {
			t.Errorf("shared/f%d has %d lines, want %d: %q", i, got, workers+1, b)
		}
	}
	for w := 0; w < workers; w++ {
		ents, err := os.ReadDir(tu.m(fmt.Sprintf("w%d", w)))
		must(t, err)
		if len(ents) != files/2 {
			t.Errorf("w%d holds %d files, want %d", w, len(ents), files/2)
		}
	}
}

func parallelWorker(tu *testUnion, w, files int) error {
	dir := tu.m(fmt.Sprintf("w%d", w))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := 0; i < files; i++ {
		f, err := os.OpenFile(tu.m(fmt.Sprintf("shared/f%d", i)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "w%d\n", w)
		f.Close()
		if err != nil {
			return err
		}
		p := fmt.Sprintf("%s/tmp%d", dir, i)
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			return err
		}
		if i%2 == 0 {
			if err := os.Remove(p); err != nil {
				return err
			}
		} else if err := os.Rename(p, fmt.Sprintf("%s/kept%d", dir, i)); err != nil {
			return err
		}
	}
	return nil
}
