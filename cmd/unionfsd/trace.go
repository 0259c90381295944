package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/unionfs"
)

// traceStderr is the --trace destination meaning standard error.
const traceStderr = "-"

// traceOps are the operations the union traces, for --trace-op.
var traceOps = []string{"lookup", "open", "create", "mkdir", "mknod", "symlink", "link",
	"unlink", "rmdir", "rename", "setattr", "setxattr", "removexattr"}

// traceOptions are --trace[=FILE], --trace-path and --trace-op.
type traceOptions struct {
	dest  string          // "" is off, traceStderr, or a file appended to
	paths []string        // path prefixes in the union; none means all
	ops   map[string]bool // operations; empty means all
}

// parseTrace checks the trace flags; the filters need --trace.
func parseTrace(dest string, paths, ops []string) (traceOptions, error) {
	t := traceOptions{dest: dest}
	if dest == "" && (len(paths) > 0 || len(ops) > 0) {
		return t, usagef("--trace-path and --trace-op filter the trace: add --trace[=FILE]")
	}
	for _, p := range paths {
		comps, err := unionfs.CleanPath(p)
		if err != nil {
			return t, usagef("--trace-path %s: %v", p, err)
		}
		t.paths = append(t.paths, "/"+strings.Join(comps, "/"))
	}
	for _, list := range ops {
		for _, op := range strings.Split(list, ",") {
			if !contains(traceOps, op) {
				return t, usagef("--trace-op %s: unknown operation (want %s)", op, strings.Join(traceOps, ", "))
			}
			if t.ops == nil {
				t.ops = map[string]bool{}
			}
			t.ops[op] = true
		}
	}
	return t, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// open makes the tracer for the options, or nil when tracing is off (the
// union then pays one nil check per operation). close flushes and closes
// the destination.
func (t traceOptions) open() (tr unionfs.Tracer, close func(), err error) {
	switch t.dest {
	case "":
		return nil, func() {}, nil
	case traceStderr:
		return t.tracer(os.Stderr), func() {}, nil
	}
	f, err := os.OpenFile(t.dest, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: trace file: %w", t.dest, unwrapPath(err))
	}
	return t.tracer(f), func() { f.Close() }, nil
}

// tracer writes one line per matching event. Lines are written whole and
// at once, before the operation returns to the kernel, so a reader sees an
// operation's line as soon as the operation is done.
func (t traceOptions) tracer(w io.Writer) unionfs.Tracer {
	var mu sync.Mutex
	return func(e unionfs.Event) {
		if !t.match(e) {
			return
		}
		line := formatEvent(e) + "\n"
		mu.Lock()
		io.WriteString(w, line)
		mu.Unlock()
	}
}

// match applies the --trace-op and --trace-path filters. A rename matches
// by either of its paths.
func (t traceOptions) match(e unionfs.Event) bool {
	if len(t.ops) > 0 && !t.ops[e.Op] {
		return false
	}
	if len(t.paths) == 0 {
		return true
	}
	target := ""
	if e.Op == "rename" {
		target = strings.TrimPrefix(e.Arg, "to ")
	}
	for _, p := range t.paths {
		if underPrefix(e.Path, p) || target != "" && underPrefix(target, p) {
			return true
		}
	}
	return false
}

func underPrefix(p, prefix string) bool {
	return prefix == "/" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

// formatEvent renders an event as "OP PATH [ARG] -> RESULT", where RESULT
// is what the operation caused in the upper (copy-up, whiteout, opaque
// marker), else the layer that answered, else the error.
func formatEvent(e unionfs.Event) string {
	var b strings.Builder
	b.WriteString(e.Op + " " + e.Path)
	if e.Arg != "" {
		b.WriteString(" " + e.Arg)
	}
	b.WriteString(" -> ")
	switch {
	case e.Err != 0:
		b.WriteString("error " + errnoName(e.Err))
		if len(e.Effect) > 0 {
			b.WriteString(" after " + effects(e))
		}
	case len(e.Effect) > 0:
		b.WriteString(effects(e))
	case e.Layer >= 0:
		fmt.Fprintf(&b, "layer %d (%s)", e.Layer, e.Dir)
	default:
		b.WriteString("ok")
	}
	return b.String()
}

// effects joins an event's effects; the event's own path is not repeated
// ("copy-up /x from layer 1" on x's event reads "copy-up from layer 1").
func effects(e unionfs.Event) string {
	out := make([]string, len(e.Effect))
	for i, eff := range e.Effect {
		out[i] = strings.Replace(eff, " "+e.Path+" from ", " from ", 1)
	}
	return strings.Join(out, "; ")
}

// errnoName is "ENOENT" for ENOENT.
func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}
