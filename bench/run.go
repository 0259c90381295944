package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/units"
)

// env is one run's shared state.
type env struct {
	ctx        context.Context
	opts       options
	cache      string
	ds         *Dataset
	scratch    string // per-method mount dirs and uppers
	unionfsd   string
	crunLite   string
	self       string // this binary, for -profile
	profiles   string
	containers *containerEnv
	baseline   map[string]map[string]string // touched subtree -> layer fingerprints
	trashed    int
	freshCount int               // fresh filesystems made (see freshFS)
	probed     map[string]string // unionfsd options asked about -> why not taken ("" = taken)
	logf       func(string, ...any)
}

// sample is one measurement: one workload, one method, one round.
type sample struct {
	round    int
	workload string
	method   string
	value    float64
	unit     string
	ok       bool
	extra    map[string]float64 // derived workloads' values (see workload.partOf)
	rssKiB   int64              // the daemon's VmHWM after the workload (0: no daemon)
	cpuSec   float64            // the daemon's user+sys CPU over the timed part
	hasCPU   bool               // cpuSec measured (FUSE methods)
	note     string
}

// summary is what a run produced.
type summary struct {
	samples    []sample
	failures   []string // correctness failures, one line each
	notes      []string // skipped methods and workloads, and why
	outDir     string
	reportPath string
	methods    []*method
	workloads  []*workload
	info       sysInfo
	started    time.Time
	elapsed    time.Duration
	opts       options
	scale      Scale
	mounts     map[string]string // method -> mount command (last used)
}

// run is the whole harness: set up, measure round by round, report. It
// leaves no mount behind, also when ctx is cancelled (Ctrl-C).
func run(ctx context.Context, o options) (sum *summary, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (mounts, drop_caches): sudo go run ./bench")
	}
	scale, err := scaleByName(o.scale)
	if err != nil {
		return nil, err
	}
	lf := logf
	if o.quiet {
		lf = func(string, ...any) {}
	}
	cache, err := filepath.Abs(o.cache)
	if err != nil {
		return nil, err
	}
	e := &env{ctx: ctx, opts: o, cache: cache, logf: lf}
	defer pending.runAll()
	unmountStale(cache)

	sum = &summary{started: time.Now(), opts: o, scale: scale, mounts: map[string]string{}}
	if err := e.setup(sum); err != nil {
		return nil, err
	}
	defer os.RemoveAll(e.scratch)
	if sum.workloads, err = selectWorkloads(scale, o.only); err != nil {
		return nil, err
	}
	if sum.methods, err = e.selectMethods(o.methods, sum); err != nil {
		return nil, err
	}
	e.skipUnavailableWorkloads(sum)
	if e.ds, err = openDataset(cache, scale, lf); err != nil {
		return nil, err
	}
	if err := e.takeBaseline(sum.workloads); err != nil {
		return nil, err
	}
	sum.info = collectSysInfo(e, sum.methods)
	tsv, err := newTSV(filepath.Join(sum.outDir, "results.tsv"))
	if err != nil {
		return nil, err
	}
	defer tsv.close()
	if err := e.settle(); err != nil {
		return nil, err
	}
	for r := 1; r <= o.rounds && ctx.Err() == nil; r++ {
		e.runRound(r, sum, tsv)
		if r < o.rounds {
			if err := e.settle(); err != nil {
				return nil, err
			}
		}
	}
	sum.elapsed = time.Since(sum.started)
	if ctx.Err() != nil {
		sum.notes = append(sum.notes, "run interrupted: the results are partial")
	}
	if err := writeReports(sum); err != nil {
		return sum, err
	}
	return sum, nil
}

// setup makes the dirs, installs missing peers and builds the binaries.
func (e *env) setup(sum *summary) error {
	o := e.opts
	sum.outDir = o.out
	if sum.outDir == "" {
		sum.outDir = filepath.Join(e.cache, "results", sum.started.Format("20060102-150405"))
	}
	var err error
	if sum.outDir, err = filepath.Abs(sum.outDir); err != nil {
		return err
	}
	e.scratch = filepath.Join(e.cache, fmt.Sprintf("scratch-%d", os.Getpid()))
	for _, d := range []string{sum.outDir, e.scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if o.profile {
		e.profiles = filepath.Join(sum.outDir, "profiles")
		if e.self, err = os.Executable(); err != nil {
			return err
		}
	}
	if o.install {
		installPeers(e.logf)
	}
	return e.buildBinaries()
}

// installPeers apt-get installs the peers that are missing; failure only
// leaves them missing (reported later).
func installPeers(logf func(string, ...any)) {
	var pkgs []string
	for _, p := range [][2]string{{"fuse-overlayfs", "fuse-overlayfs"}, {"unionfs", "unionfs-fuse"}, {"fio", "fio"}, {"runc", "runc"}} {
		if _, err := exec.LookPath(p[0]); err != nil {
			pkgs = append(pkgs, p[1])
		}
	}
	if len(pkgs) == 0 {
		return
	}
	logf("installing %s with apt-get", strings.Join(pkgs, " "))
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		logf("apt-get install %s failed (%v); those methods are skipped: %s", strings.Join(pkgs, " "), err, lastLine(string(out)))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// buildBinaries builds unionfsd and crun-lite from the repo unless given.
func (e *env) buildBinaries() error {
	e.unionfsd, e.crunLite = e.opts.unionfsd, e.opts.crunLite
	if e.unionfsd != "" && e.crunLite != "" {
		return nil
	}
	repo, err := e.repoDir()
	if err != nil {
		return err
	}
	bin := filepath.Join(e.scratch, "bin")
	for _, b := range []struct {
		dst *string
		pkg string
	}{{&e.unionfsd, "./cmd/unionfsd"}, {&e.crunLite, "./cmd/crun-lite"}} {
		if *b.dst != "" {
			continue
		}
		out := filepath.Join(bin, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+gitVersion(repo), "-o", out, b.pkg)
		cmd.Dir = repo
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v: %s", b.pkg, err, msg)
		}
		*b.dst = out
	}
	return nil
}

func (e *env) repoDir() (string, error) {
	if e.opts.repo != "" {
		return filepath.Abs(e.opts.repo)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the repo (go list -m): %v; give -repo or -unionfsd", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func gitVersion(repo string) string {
	out, err := exec.Command("git", "-C", repo, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

func selectWorkloads(s Scale, only []string) ([]*workload, error) {
	all := allWorkloads(s)
	if len(only) == 0 {
		return all, nil
	}
	var out []*workload
	add := func(w *workload) {
		// A derived row comes with its parent; naming both lists it once.
		if indexOf(out, w) < 0 {
			out = append(out, w)
		}
	}
	for _, name := range only {
		var found *workload
		for _, w := range all {
			if w.name == name {
				found = w
			}
		}
		if found == nil {
			return nil, fmt.Errorf("-only %s: no such workload (see -list)", name)
		}
		add(found)
		for _, w := range all {
			if w.partOf == name {
				add(w)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return indexOf(all, out[i]) < indexOf(all, out[j]) })
	return out, nil
}

func indexOf(ws []*workload, w *workload) int {
	for i, x := range ws {
		if x == w {
			return i
		}
	}
	return -1
}

// selectMethods keeps the requested methods and notes the ones that cannot
// run here.
func (e *env) selectMethods(names []string, sum *summary) ([]*method, error) {
	all := allMethods()
	chosen := all
	if len(names) > 0 {
		chosen = nil
		for _, n := range names {
			var found *method
			for _, m := range all {
				if m.name == n {
					found = m
				}
			}
			if found == nil {
				return nil, fmt.Errorf("-methods %s: no such method (see -list)", n)
			}
			chosen = append(chosen, found)
		}
	}
	var out []*method
	for _, m := range chosen {
		switch {
		case m.kind == "unionfsd" && e.opts.profile && m.noServe != "":
			m.missing = "-profile serves unionfsd from the bench binary, which " + m.noServe
		case m.kind == "unionfsd":
			m.bin = e.unionfsd
			m.missing = e.optionMissing(m)
		case m.bin != "":
			if p, err := exec.LookPath(m.bin); err != nil {
				m.missing = fmt.Sprintf("%s not installed (apt-get install %s)", m.bin, m.pkg)
			} else {
				m.bin = p
			}
		}
		if m.missing != "" {
			sum.notes = append(sum.notes, fmt.Sprintf("method %s skipped: %s", m.name, m.missing))
			e.logf("skipping %s: %s", m.name, m.missing)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// derivedOf lists the workloads measured by w's samples.
func derivedOf(ws []*workload, w *workload) []*workload {
	var out []*workload
	for _, d := range ws {
		if d.partOf == w.name {
			out = append(out, d)
		}
	}
	return out
}

// cannotRun is true for a container method that could not be set up here
// (noted once in the report, not counted as a failure).
func (e *env) cannotRun(w *workload, m *method) bool {
	return w.needs == "container" && e.containers != nil && e.containers.missing[m.kind] != "" && m.kind == "podman"
}

// skipUnavailableWorkloads drops workloads whose tool is missing.
func (e *env) skipUnavailableWorkloads(sum *summary) {
	var keep []*workload
	for _, w := range sum.workloads {
		why := ""
		switch w.needs {
		case "fio":
			if _, err := exec.LookPath("fio"); err != nil {
				why = "fio not installed (apt-get install fio)"
			}
		case "container":
			e.containers = e.prepareContainers()
			if len(e.containers.missing) > 0 {
				var ms []string
				for k, v := range e.containers.missing {
					ms = append(ms, k+": "+v)
				}
				sort.Strings(ms)
				sum.notes = append(sum.notes, "container-start partly skipped: "+strings.Join(ms, "; "))
			}
		}
		if why != "" {
			sum.notes = append(sum.notes, fmt.Sprintf("workload %s skipped: %s", w.name, why))
			e.logf("skipping %s: %s", w.name, why)
			continue
		}
		keep = append(keep, w)
	}
	sum.workloads = keep
}

// takeBaseline fingerprints the lower layers before anything is mounted:
// every layer whole, and each subtree a workload writes to.
func (e *env) takeBaseline(ws []*workload) error {
	e.baseline = map[string]map[string]string{}
	subs := []string{""}
	for _, w := range ws {
		subs = append(subs, w.touches...)
	}
	for _, s := range subs {
		if _, ok := e.baseline[s]; ok {
			continue
		}
		fp, err := e.ds.layerFingerprints(s)
		if err != nil {
			return err
		}
		e.baseline[s] = fp
	}
	return nil
}

// checkLayers compares the layers' fingerprints of sub with the baseline.
func (e *env) checkLayers(sub string) error {
	fp, err := e.ds.layerFingerprints(sub)
	if err != nil {
		return err
	}
	if bad := changedLayers(e.baseline[sub], fp); len(bad) > 0 {
		return checkf("lower layer changed: %s", strings.Join(bad, ", "))
	}
	return nil
}

// runRound runs every workload once per method. Methods take turns in an
// order that rotates each round, so drift and ordering effects spread over
// all of them.
func (e *env) runRound(r int, sum *summary, tsv *tsvWriter) {
	order := append([]*method(nil), sum.methods...)
	if n := len(order); n > 0 {
		k := (r - 1) % n
		order = append(order[k:], order[:k]...)
	}
	e.logf("round %d of %d", r, e.opts.rounds)
	for _, w := range sum.workloads {
		if w.partOf != "" {
			continue // measured by its parent
		}
		for _, m := range methodOrder(order, w) {
			if e.ctx.Err() != nil {
				return
			}
			if !m.runs(w) || e.cannotRun(w, m) {
				continue
			}
			s := e.runOne(w, m, r, sum)
			if e.ctx.Err() != nil {
				return // an interrupted sample is neither a result nor a failure
			}
			for _, d := range derivedOf(sum.workloads, w) {
				if len(d.methods) > 0 && !contains(d.methods, m.kind) {
					continue
				}
				if v, ok := s.extra[d.name]; ok || !s.ok {
					ds := s
					ds.workload, ds.value, ds.unit = d.name, v, d.unit
					sum.samples = append(sum.samples, ds)
					tsv.write(ds)
				}
			}
			sum.samples = append(sum.samples, s)
			tsv.write(s)
			if !s.ok {
				sum.failures = append(sum.failures, fmt.Sprintf("round %d %s %s: %s", r, w.name, m.name, s.note))
			}
			e.logf("  %-18s %-16s %s", w.name, m.name, formatSample(s))
		}
	}
	if err := e.checkLayers(""); err != nil {
		sum.failures = append(sum.failures, fmt.Sprintf("round %d: %v", r, err))
	}
}

// runOne mounts a fresh instance, runs the workload on it and checks that
// the lower layers it touched are unchanged.
func (e *env) runOne(w *workload, m *method, r int, sum *summary) sample {
	s := sample{round: r, workload: w.name, method: m.name, unit: w.unit, ok: true}
	fail := func(err error) sample {
		s.ok = false
		if s.note == "" {
			s.note = oneLine(err.Error())
		}
		return s
	}
	if w.ownMount {
		in := &instance{m: m}
		unix.Sync()
		v, err := w.run(e, in)
		s.value, s.extra = v, in.extra
		if err != nil {
			return fail(err)
		}
		return s
	}
	profile := ""
	if e.profiles != "" && m.kind == "unionfsd" {
		dir := filepath.Join(e.profiles, m.name)
		os.MkdirAll(dir, 0o755)
		profile = filepath.Join(dir, fmt.Sprintf("%s-r%d.cpu.pprof", w.name, r))
	}
	in, err := e.mountInstance(m, w, profile)
	if err != nil {
		return fail(err)
	}
	sum.mounts[m.name] = in.cmdline
	// Write back what earlier samples left dirty, so their writeback does
	// not land in this sample's time.
	unix.Sync()
	v, err := w.run(e, in)
	s.value, s.extra = v, in.extra
	s.cpuSec, s.hasCPU = in.cpuSec, in.hasCPU
	if err != nil {
		fail(err)
	} else if err := in.checkServing(); err != nil {
		fail(err)
	}
	if in.pid != 0 {
		s.rssKiB, _ = in.procStatus("VmHWM")
	}
	if err := in.close(); err != nil {
		fail(err)
	} else if err := in.checkTrace(); err != nil {
		fail(err)
	}
	for _, sub := range w.touches {
		if m.kind == "native" {
			break
		}
		if err := e.checkLayers(sub); err != nil {
			fail(err)
		}
	}
	// Informational notes last: a failure's reason takes the note first.
	if in.slowExit > 0 && s.note == "" {
		s.note = fmt.Sprintf("daemon took %v to exit after umount", in.slowExit.Round(time.Millisecond))
	}
	if m.trace && s.note == "" {
		s.note = "trace file " + units.Bytes(in.traceBytes)
	}
	return s
}

func (e *env) dropCaches(what int) error {
	if !e.opts.dropCaches {
		return nil
	}
	return dropCaches(what)
}

func formatSample(s sample) string {
	v := fmt.Sprintf("%.4g %s", s.value, s.unit)
	if !s.ok {
		v += "  FAIL: " + s.note
	}
	return v
}

// methodOrder is the round's order, with native moved last where the
// workload asks for it.
func methodOrder(order []*method, w *workload) []*method {
	if !w.nativeLast {
		return order
	}
	var out []*method
	var native *method
	for _, m := range order {
		if m.kind == "native" {
			native = m
		} else {
			out = append(out, m)
		}
	}
	if native != nil {
		out = append(out, native)
	}
	return out
}

// uringParam is the kernel's switch for FUSE over io_uring (Linux 6.14+,
// CONFIG_FUSE_IO_URING); without it the kernel cannot do io_uring=on.
const uringParam = "/sys/module/fuse/parameters/enable_uring"

// optionMissing says why m (the default unionfsd with one option changed)
// cannot run here: the kernel lacks what the option needs, or the unionfsd
// binary does not take the option. "" when it can run.
func (e *env) optionMissing(m *method) string {
	if m.needs != "" {
		b, err := os.ReadFile(m.needs)
		switch {
		case err != nil:
			return fmt.Sprintf("the kernel has no %s (needed by %s)", m.needs, strings.Join(m.args, " "))
		case strings.TrimSpace(string(b)) != "Y":
			// A machine-wide switch: the harness does not flip it.
			return fmt.Sprintf("%s needs %s = Y, it is %s (as root: echo Y > %s)", strings.Join(m.args, " "), m.needs, strings.TrimSpace(string(b)), m.needs)
		}
	}
	if !m.probe {
		return ""
	}
	key := strings.Join(m.args, " ")
	if e.probed == nil {
		e.probed = map[string]string{}
	}
	if why, ok := e.probed[key]; ok {
		return why
	}
	why := probeOption(e.unionfsd, m.args)
	e.probed[key] = why
	return why
}

// probeOption asks the unionfsd binary once whether it takes args: it
// runs it with them and paths that do not exist, so nothing can be mounted.
// A binary that does not know an option exits 2 (a command-line error)
// naming it; one that takes it fails later, on the missing mountpoint.
func probeOption(bin string, args []string) string {
	const nowhere = "/nonexistent-bench-probe"
	argv := append(append([]string(nil), args...), "-o", "lowerdir="+nowhere, "none", nowhere+"-mnt")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	var xerr *exec.ExitError
	if !errors.As(err, &xerr) || xerr.ExitCode() != 2 {
		return ""
	}
	msg := oneLine(string(out))
	for _, a := range args {
		if k, _, _ := strings.Cut(a, "="); a != "-o" && strings.Contains(msg, k) {
			return fmt.Sprintf("%s does not take %s (it says: %s)", filepath.Base(bin), strings.Join(args, " "), msg)
		}
	}
	return ""
}
