package unionfs

import (
	"fmt"
	"syscall"
	"time"
)

// Event is one traced operation on the merged view: what was asked, which
// layer answered and what it caused in the upper.
type Event struct {
	Op     string // lookup, open, create, mkdir, mknod, symlink, link, unlink, rmdir, rename, setattr, setxattr, removexattr
	Path   string // path in the merged view, starting with "/"
	Arg    string // op detail from the caller: open mode, rename target
	Layer  int    // the layer that answered (0 is the upper of a rw union), -1 for none
	Dir    string // that layer's directory
	Effect []string
	Err    syscall.Errno
	Dur    time.Duration
}

// Tracer receives events; it must not block for long: it runs on the FUSE
// request path.
type Tracer func(Event)

// opTrace collects one operation's event. Nil when tracing is off, so the
// hot path pays one nil check.
type opTrace struct {
	u     *unionFS
	ev    Event
	start time.Time
}

func (u *unionFS) trace(op, rel string) *opTrace {
	if u.cfg.Trace == nil {
		return nil
	}
	return &opTrace{u: u, ev: Event{Op: op, Path: "/" + rel, Layer: -1}, start: time.Now()}
}

// layer records the layer that answered.
func (t *opTrace) layer(li int) {
	if t != nil && li >= 0 && li < len(t.u.layers) {
		t.ev.Layer, t.ev.Dir = li, t.u.layers[li].path
	}
}

func (t *opTrace) arg(format string, a ...any) {
	if t != nil {
		t.ev.Arg = fmt.Sprintf(format, a...)
	}
}

// done emits the event with the effects the operation noted on the way.
func (t *opTrace) done(eno syscall.Errno) {
	if t == nil {
		return
	}
	t.ev.Err = eno
	t.ev.Dur = time.Since(t.start)
	t.u.cfg.Trace(t.ev)
}

// note records an effect in the upper (copy-up, whiteout, opaque marker) for
// the operation in progress. Effects happen under u.mu held for writing, so
// one pending list per mount is enough.
func (u *unionFS) note(format string, a ...any) {
	if u.cfg.Trace != nil {
		u.notes = append(u.notes, fmt.Sprintf(format, a...))
	}
}

// takeNotes moves the pending effects into t; the caller holds u.mu.
func (t *opTrace) takeNotes() {
	if t == nil {
		return
	}
	t.ev.Effect = append(t.ev.Effect, t.u.notes...)
	t.u.notes = t.u.notes[:0]
}

// lockOp starts a namespace operation: it takes u.mu for writing and starts
// the op's trace.
func (u *unionFS) lockOp(op, rel string) *opTrace {
	tr := u.trace(op, rel)
	u.lockWrite()
	return tr
}

// unlockOp ends what lockOp started and emits the trace event.
func (u *unionFS) unlockOp(tr *opTrace, eno syscall.Errno) {
	tr.takeNotes()
	u.mu.Unlock()
	tr.done(eno)
}

// endLockedOp ends an operation whose caller took u.mu (rawFS): it emits
// the trace event but leaves the lock to the caller.
func (u *unionFS) endLockedOp(tr *opTrace, eno syscall.Errno) {
	tr.takeNotes()
	tr.done(eno)
}

// openMode names an open's access mode for the trace.
func openMode(flags uint32) string {
	mode := map[uint32]string{syscall.O_RDONLY: "ro", syscall.O_WRONLY: "wo", syscall.O_RDWR: "rw"}[flags&syscall.O_ACCMODE]
	if flags&syscall.O_TRUNC != 0 {
		mode += ",trunc"
	}
	if flags&syscall.O_APPEND != 0 {
		mode += ",append"
	}
	return mode
}
