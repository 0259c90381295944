package unionfs

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// TestTraceEvents checks that traced operations name the answering layer
// and the effects in the upper.
func TestTraceEvents(t *testing.T) {
	tu := newLayers(t, 2)
	writeFile(t, tu.lowers[1]+"/etc/hosts", "127.0.0.1 localhost\n")
	writeFile(t, tu.lowers[0]+"/tmp/x", "x")
	writeFile(t, tu.lowers[1]+"/d/old", "o")
	var mu sync.Mutex
	var events []Event
	tu.mount(t, func(c *Config) {
		c.Trace = func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	})
	_, err := os.ReadFile(tu.m("etc/hosts"))
	must(t, err)
	must(t, os.WriteFile(tu.m("etc/hosts"), []byte("changed"), 0o644))
	must(t, os.Remove(tu.m("tmp/x")))
	must(t, os.RemoveAll(tu.m("d")))
	must(t, os.Mkdir(tu.m("d"), 0o755))

	mu.Lock()
	defer mu.Unlock()
	want := []struct{ op, path, layerDir, effect string }{
		{"lookup", "/etc/hosts", tu.lowers[1], ""},
		// The write open copies up; when the reader's RELEASE (sent in the
		// background) has not arrived yet, that open splits the name off
		// its lower readers and fails with ESTALE, and the VFS's retry
		// lands in the upper (lowerpt.go): either way both events show.
		{"open", "/etc/hosts", "", "copy-up /etc/hosts from layer 2"},
		{"open", "/etc/hosts", tu.upper, ""},
		{"unlink", "/tmp/x", "", "whiteout " + tu.upper + "/tmp/.wh.x"},
		{"rmdir", "/d", "", "whiteout " + tu.upper + "/.wh.d"},
		{"mkdir", "/d", "", "opaque " + tu.upper + "/d/.wh..wh..opq"},
	}
	for _, w := range want {
		if !hasEvent(events, w.op, w.path, w.layerDir, w.effect) {
			t.Errorf("no %s %s event with layer %q and effect %q; got:\n%s", w.op, w.path, w.layerDir, w.effect, dumpEvents(events))
		}
	}
}

func hasEvent(events []Event, op, path, dir, effect string) bool {
	for _, e := range events {
		if e.Op != op || e.Path != path || dir != "" && e.Dir != dir {
			continue
		}
		if effect == "" || strings.Contains(strings.Join(e.Effect, "; "), effect) {
			return true
		}
	}
	return false
}

func dumpEvents(events []Event) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.Op + " " + e.Path + " " + e.Arg + " -> " + e.Dir + " " + strings.Join(e.Effect, "; ") + "\n")
	}
	return b.String()
}
