package difftest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Check mounts s, runs ops on both sides and fails t with the first
// divergence. With minimize > 0 it then spends up to that long shrinking the
// op sequence to a minimal one that still diverges the same way, and prints
// it as Go code.
func Check(t testing.TB, s Setup, ops []Op, o Options, minimize time.Duration) {
	t.Helper()
	d, p, err := RunOnce(t.TempDir(), s, ops, o, t.Cleanup)
	if d != nil {
		t.Errorf("%d ops, first divergence %s=reference %s=candidate:\n%s", len(ops), d.RefName, d.CandName, d)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) > 20 {
		t.Logf("outcomes: %v", p.Outcomes)
	}
	for _, s := range p.Slow {
		t.Logf("slow: %s", s)
	}
	for _, n := range p.Notes {
		t.Logf("note (marker that hides nothing, not a divergence): %s", n)
	}
	if d == nil || minimize <= 0 || len(ops) == 0 {
		return
	}
	if d.Where == "hang" {
		// A hung server keeps a goroutine (often a spinning one) for the
		// rest of the process: no trial runs for those.
		from := max(0, d.Index-40)
		t.Errorf("not minimized (hangs are not retried); ops #%d..#%d:\n%s", from, d.Index, GoSeq(ops[from:d.Index+1]))
		return
	}
	seq, md := Minimize(t.TempDir(), s, ops[:min(d.Index+1, len(ops))], o, minimize)
	if md == nil {
		t.Logf("minimization could not reproduce the divergence: it depends on timing (kernel caches, inode reuse)")
		return
	}
	t.Errorf("minimal reproduction (%d ops):\n%s\ndiverges at:\n%s", len(seq), GoSeq(seq), md)
}

// RunOnce mounts s under dir, runs ops, unmounts and returns the first
// divergence and the pair (for its notes, outcome counts and slow ops).
// cleanup (t.Cleanup, or nil) gets the unmount too, so that a panic or a
// Fatal in between leaks nothing.
func RunOnce(dir string, s Setup, ops []Op, o Options, cleanup func(func())) (*Divergence, *Pair, error) {
	p, err := StartPair(dir, s)
	if cleanup != nil {
		cleanup(func() { p.Close() })
	}
	if err != nil {
		p.Close()
		return nil, p, err
	}
	d, err := p.Run(ops, o)
	if cerr := p.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return d, p, err
}

// Minimize shrinks ops (a sequence that diverges) to a small subsequence
// that still diverges the same way (same check, same op kind). It compares
// the merged trees after every op, to pin the divergence on one op; when the
// divergence does not show that way (it depends on kernel cache timing that
// the extra walks change) it keeps the original cadence and matches on the
// check alone. It gives up after budget and returns the best sequence found
// and its divergence (nil if the sequence no longer diverges at all: a
// timing-dependent divergence).
func Minimize(dir string, s Setup, ops []Op, o Options, budget time.Duration) ([]Op, *Divergence) {
	deadline := time.Now().Add(budget)
	trial, hangs := 0, 0
	try := func(seq []Op, o Options) *Divergence {
		trial++
		sub := fmt.Sprintf("%s/trial%d", dir, trial)
		d, _, err := RunOnce(sub, s, seq, o, nil)
		os.RemoveAll(sub)
		if err != nil {
			return nil
		}
		if d != nil && d.Where == "hang" {
			hangs++
		}
		return d
	}
	everyOp := o
	everyOp.TreeEvery = 1
	signature := (*Divergence).signature
	d := try(ops, everyOp)
	if d == nil {
		everyOp = o
		signature = func(d *Divergence) string { return d.Where }
		if d = try(ops, o); d == nil {
			return ops, nil
		}
	}
	ops = ops[:min(d.Index+1, len(ops))]
	want := signature(d)
	fails := func(seq []Op) *Divergence {
		if hangs > 0 {
			return nil // a hung trial leaves a stuck server goroutine: stop
		}
		if nd := try(seq, everyOp); nd != nil && signature(nd) == want {
			return nd
		}
		return nil
	}
	return ddmin(ops, d, fails, deadline)
}

// ddmin removes ever smaller chunks of ops while the rest still fails.
func ddmin(ops []Op, d *Divergence, fails func([]Op) *Divergence, deadline time.Time) ([]Op, *Divergence) {
	n := 2
	for len(ops) >= 2 && time.Now().Before(deadline) {
		chunk := (len(ops) + n - 1) / n
		reduced := false
		for start := 0; start < len(ops) && time.Now().Before(deadline); start += chunk {
			rest := append(append([]Op(nil), ops[:start]...), ops[min(start+chunk, len(ops)):]...)
			if nd := fails(rest); nd != nil {
				ops, d = rest[:min(nd.Index+1, len(rest))], nd
				n = max(n-1, 2)
				reduced = true
				break
			}
		}
		if !reduced {
			if n >= len(ops) {
				break
			}
			n = min(2*n, len(ops))
		}
	}
	return ops, d
}

// GoSeq prints ops as a Go slice literal for a scripted test case.
func GoSeq(ops []Op) string {
	var b strings.Builder
	b.WriteString("[]Op{\n")
	for _, op := range ops {
		fmt.Fprintf(&b, "\t%s,\n", op)
	}
	b.WriteString("}")
	return b.String()
}
