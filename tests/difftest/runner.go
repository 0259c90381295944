package difftest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Setup is one comparison: a layer stack and the two unions to mount on
// identical copies of it.
type Setup struct {
	Layers []Layer // top first
	Ref    Mounter // the reference, kernel overlay
	Cand   Mounter // the union under test
	// CandNoWork leaves the candidate's workdir empty, so unionfsd puts it
	// inside the upper (unionfs-fuse style mounts).
	CandNoWork bool
}

// Options tune a run.
type Options struct {
	// TreeEvery compares the merged trees after every TreeEvery ops (and
	// always after the last); 0 compares only at the end.
	TreeEvery int
	// StrictUpper also counts whiteouts and opaque markers that hide nothing
	// as divergences (they are otherwise reported as notes).
	StrictUpper bool
	// SkipUpper leaves the upper dirs uncompared, for candidates whose
	// upper holds a different but equivalent encoding (metadata-only
	// copy-up). Lower layers are still checked.
	SkipUpper bool
}

// Side is one mounted union.
type Side struct {
	M                 Mounter
	Root, Upper, Work string
	Lowers            []string
	Env               *Env
	unmount           func() error
	lowerPrint        []string
	// startInos maps the st_ino of every object visible at mount time to
	// its path: an object created later must never show one of them.
	startInos map[uint64]string
}

// Pair is the reference and the candidate, mounted over identical layers.
type Pair struct {
	Ref, Cand *Side
	lowerView map[string]bool
	// Notes collects harmless upper differences (redundant markers).
	Notes []string
	// Outcomes counts the results of the ops run so far by errno name, to
	// show that a sequence exercises successes and failures alike.
	Outcomes map[string]int
	// Slow lists the ops that took either side longer than slowOp.
	Slow []string
}

// slowOp is how long an op may take before Pair.Slow records it.
const slowOp = 200 * time.Millisecond

// StartPair builds the layers twice under dir and mounts both unions.
// Close it even when StartPair fails half-way: it unmounts what was mounted.
func StartPair(dir string, s Setup) (*Pair, error) {
	p := &Pair{}
	if err := makeSearchable(dir); err != nil {
		return p, err
	}
	var err error
	if p.Ref, err = startSide(filepath.Join(dir, "ref"), s.Layers, s.Ref, false); err != nil {
		return p, err
	}
	if p.Cand, err = startSide(filepath.Join(dir, "cand"), s.Layers, s.Cand, s.CandNoWork); err != nil {
		return p, err
	}
	p.lowerView, err = LowerView(p.Ref.Lowers)
	return p, err
}

// makeSearchable lets every user traverse dir and its parents (test temp
// dirs are 0700): ops that run as another user reach the mounts by path,
// and without this they would all fail with EACCES on both sides and test
// nothing.
func makeSearchable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("setup %s: %w", dir, err)
	}
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("setup %s: %w", d, err)
		}
		if st.Mode&0o001 != 0 {
			continue
		}
		if err := unix.Chmod(d, st.Mode&0o7777|0o011); err != nil {
			return fmt.Errorf("setup %s: %w", d, err)
		}
	}
	return nil
}

func startSide(dir string, layers []Layer, m Mounter, noWork bool) (*Side, error) {
	s := &Side{M: m, Root: filepath.Join(dir, "mnt"), Upper: filepath.Join(dir, "upper")}
	if !noWork {
		s.Work = filepath.Join(dir, "work")
	}
	lowers, err := BuildStack(filepath.Join(dir, "lower"), layers, m.Format)
	if err != nil {
		return nil, err
	}
	s.Lowers = lowers
	for _, d := range []string{s.Root, s.Upper, s.Work} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("setup %s: %w", d, err)
		}
	}
	if s.lowerPrint, err = Fingerprint(lowers...); err != nil {
		return nil, err
	}
	s.unmount, err = m.Mount(lowers, s.Upper, s.Work, s.Root)
	if err != nil {
		return nil, err
	}
	s.Env = NewEnv(s.Root, m.EmulateEXDEV)
	s.startInos = map[uint64]string{}
	err = walk(s.Root, "", func(rel, p string, st *unix.Stat_t) (bool, error) {
		s.startInos[st.Ino] = rel
		return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
	})
	return s, err
}

// Close unmounts both sides. It is safe to call more than once.
func (p *Pair) Close() error {
	var errs []string
	for _, s := range []*Side{p.Cand, p.Ref} {
		if s == nil || s.unmount == nil {
			continue
		}
		s.Env.CloseAll() // an open descriptor keeps the mount busy
		if err := s.unmount(); err != nil {
			errs = append(errs, err.Error())
		}
		s.unmount = nil
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Divergence is the first place where the two unions disagree.
type Divergence struct {
	Index    int    // op index; len(ops) for checks after the last op
	Op       *Op    // nil for end-of-run checks
	Where    string // result, merged, upper, lower, hang, identity
	RefName  string
	CandName string
	Lines    []string
}

func (d *Divergence) String() string {
	head := fmt.Sprintf("after op #%d (end of run)", d.Index-1)
	if d.Op != nil {
		head = fmt.Sprintf("op #%d %s", d.Index, d.Op)
	}
	var b strings.Builder
	for i, l := range d.Lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: %s %s", head, d.Where, l)
	}
	return b.String()
}

// signature identifies a kind of divergence, so that minimization keeps
// chasing the same bug: the check and the op kind, and for a result the
// two outcomes too.
func (d *Divergence) signature() string {
	if d.Op == nil {
		return d.Where
	}
	sig := d.Where + " " + string(d.Op.Kind)
	if d.Where == "result" && len(d.Lines) == 1 {
		sig += " " + d.Lines[0]
	}
	return sig
}

// Run applies ops to both sides and returns the first divergence, or nil.
// A harness failure (a snapshot that cannot be read) is returned as error.
func (p *Pair) Run(ops []Op, o Options) (*Divergence, error) {
	for i := range ops {
		op := &ops[i]
		var rr, rc Result
		start := time.Now()
		if hang := p.Ref.guard(func() { rr = op.Apply(p.Ref.Env) }); hang != "" {
			return p.divergence(i, op, "hang", hang), nil
		}
		mid := time.Now()
		if hang := p.Cand.guard(func() { rc = op.Apply(p.Cand.Env) }); hang != "" {
			return p.divergence(i, op, "hang", hang), nil
		}
		if tr, tc := mid.Sub(start), time.Since(mid); max(tr, tc) > slowOp {
			p.Slow = append(p.Slow, fmt.Sprintf("op #%d %s: %s %v, %s %v", i, op,
				p.Ref.M.Name, tr.Round(time.Millisecond), p.Cand.M.Name, tc.Round(time.Millisecond)))
		}
		p.count(rr)
		if traceOps {
			fmt.Fprintf(os.Stderr, "op #%d %s: %s\n", i, op, rr)
		}
		if rr != rc {
			return p.divergence(i, op, "result",
				fmt.Sprintf("%s=%s %s=%s", p.Ref.M.Name, rr, p.Cand.M.Name, rc)), nil
		}
		if d := p.checkNewIdentity(i, op, rr); d != nil {
			return d, nil
		}
		last := i == len(ops)-1
		if last || (o.TreeEvery > 0 && (i+1)%o.TreeEvery == 0) {
			if d, err := p.compareMerged(i, op); d != nil || err != nil {
				return d, err
			}
		}
	}
	// Descriptors still open would keep unlinked files in the uppers and
	// the lowers' fingerprints are taken after this.
	p.Ref.Env.CloseAll()
	p.Cand.Env.CloseAll()
	return p.finalChecks(len(ops), o)
}

// traceOps (DIFFTEST_TRACE=1) prints every op and the reference's result,
// to see what a sequence really exercises.
var traceOps = os.Getenv("DIFFTEST_TRACE") != ""

func (p *Pair) count(r Result) {
	if p.Outcomes == nil {
		p.Outcomes = map[string]int{}
	}
	name := "ok"
	if r.Errno != 0 {
		name = unix.ErrnoName(r.Errno)
	}
	p.Outcomes[name]++
}

// checkNewIdentity checks, after an op that made a new object, that the
// object's st_ino is none of those shown at mount time. A union that maps
// inode numbers (to keep st_ino across copy-up) and keeps a stale mapping
// after the upper inode is freed and recycled fails this; the kernel and
// go-fuse then take the new object for the old one (stale attributes and
// symlink targets, writes to the wrong file, directory cycles).
func (p *Pair) checkNewIdentity(i int, op *Op, r Result) *Divergence {
	creates := op.Kind == KMkdir || op.Kind == KSymlink || op.Kind == KMkfifo ||
		(op.Kind == KCreate && op.Flags&unix.O_EXCL != 0)
	if !creates || r.Errno != 0 {
		return nil
	}
	for _, s := range []*Side{p.Ref, p.Cand} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(s.Root, op.Path), &st); err != nil {
			continue // the result comparison covers a missing object
		}
		if old, ok := s.startInos[st.Ino]; ok {
			return p.divergence(i, op, "identity", fmt.Sprintf("%s: new %s has st_ino %d, the number of %q at mount time",
				s.M.Name, op.Path, st.Ino, old))
		}
	}
	return nil
}

func (p *Pair) divergence(i int, op *Op, where string, lines ...string) *Divergence {
	return &Divergence{Index: i, Op: op, Where: where,
		RefName: p.Ref.M.Name, CandName: p.Cand.M.Name, Lines: lines}
}

func (p *Pair) compareMerged(i int, op *Op) (*Divergence, error) {
	var tr, tc Tree
	var err, cerr error
	if hang := p.Ref.guard(func() { tr, err = ScanMerged(p.Ref.Root) }); hang != "" {
		return p.divergence(i, op, "hang", "walking the merged tree: "+hang), nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Ref.M.Name, err)
	}
	if hang := p.Cand.guard(func() { tc, cerr = ScanMerged(p.Cand.Root) }); hang != "" {
		return p.divergence(i, op, "hang", "walking the merged tree: "+hang), nil
	}
	if err := cerr; err != nil {
		// A merged view that cannot be walked is a divergence, not a
		// harness failure: the reference could be walked.
		return p.divergence(i, op, "merged", fmt.Sprintf("walk: %s: %v", p.Cand.M.Name, err)), nil
	}
	if lines := Diff(tr, tc, p.Ref.M.Name, p.Cand.M.Name); len(lines) > 0 {
		return p.divergence(i, op, "merged", lines...), nil
	}
	return nil, nil
}

// finalChecks compares the upper dirs and checks that no lower changed.
func (p *Pair) finalChecks(n int, o Options) (*Divergence, error) {
	for _, s := range []*Side{p.Cand, p.Ref} {
		now, err := Fingerprint(s.Lowers...)
		if err != nil {
			return nil, err
		}
		if lines := diffLines(s.lowerPrint, now); len(lines) > 0 {
			return p.divergence(n, nil, "lower", append([]string{s.M.Name + " modified a lower layer:"}, lines...)...), nil
		}
	}
	if o.SkipUpper {
		return nil, nil
	}
	ur, err := ScanUpper(p.Ref.Upper)
	if err != nil {
		return nil, err
	}
	uc, err := ScanUpper(p.Cand.Upper)
	if err != nil {
		return nil, err
	}
	redundant := func(path string, a, b Node) bool {
		ok := func(t Tree, n Node) bool { return n.Type == "" || RedundantMarker(t, path, p.lowerView) }
		return ok(ur, a) && ok(uc, b)
	}
	if o.StrictUpper {
		redundant = nil
	}
	if lines := diffFiltered(ur, uc, p.Ref.M.Name, p.Cand.M.Name, redundant); len(lines) > 0 {
		return p.divergence(n, nil, "upper", lines...), nil
	}
	if !o.StrictUpper {
		p.Notes = Diff(ur, uc, p.Ref.M.Name, p.Cand.M.Name)
	}
	return nil, nil
}

// diffLines lists the lines only in a ("-") or only in b ("+").
func diffLines(a, b []string) []string {
	in := func(s []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, x := range a {
		if !mb[x] {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !ma[x] {
			out = append(out, "+ "+x)
		}
	}
	return out
}

// Fingerprint describes every object in dirs, times and all xattrs
// included (atime excepted), one line each: equal fingerprints mean nothing
// was written.
func Fingerprint(dirs ...string) ([]string, error) {
	var lines []string
	for i, d := range dirs {
		err := walk(d, "", func(rel, p string, st *unix.Stat_t) (bool, error) {
			n, err := describe(p, st, false)
			if err != nil {
				return false, err
			}
			lines = append(lines, fmt.Sprintf("l%d/%s %s rdev=%d mtime=%d.%09d ctime=%d.%09d",
				i, rel, n, st.Rdev, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec))
			return n.Type == "dir", nil
		})
		if err != nil {
			return nil, fmt.Errorf("fingerprint: %w", err)
		}
	}
	return lines, nil
}

// opTimeout bounds one op, or one walk of a merged tree, on one side; no op
// of a sequence comes near it unless the union hangs.
var opTimeout = 20 * time.Second

// guard runs f. If f does not return within opTimeout, the union is hung:
// guard saves every goroutine's stack (the in-process server's included) to
// a file, aborts the side's FUSE connection so that the stuck system call
// fails and the test can go on to fail cleanly, and returns a description
// of the hang. It returns "" when f returned in time.
func (s *Side) guard(f func()) (hang string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return ""
	case <-time.After(opTimeout):
	}
	stacks := saveStacks()
	if conn := fuseConn(s.Root); conn >= 0 {
		if err := AbortFUSE(conn); err != nil {
			stacks += "; " + err.Error()
		}
	}
	select {
	case <-done:
	case <-time.After(opTimeout):
	}
	return fmt.Sprintf("%s did not answer within %v (goroutine stacks: %s)", s.M.Name, opTimeout, stacks)
}

// saveStacks writes all goroutine stacks to a temp file and returns its
// name. The file outlives the test on purpose: it is the diagnosis.
func saveStacks() string {
	f, err := os.CreateTemp("", "difftest-hang-*.txt")
	if err != nil {
		return "not saved: " + err.Error()
	}
	defer f.Close()
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		return "not saved: " + err.Error()
	}
	return f.Name()
}
