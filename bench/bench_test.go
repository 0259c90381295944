package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
)

// TestSmoke runs the whole harness on the tiny data set, one round, with the
// methods installed here. It asserts the correctness checks, never timings.
func TestSmoke(t *testing.T) {
	needRoot(t)
	o := options{
		cache: t.TempDir(), out: t.TempDir(), scale: "tiny", rounds: 1,
		install: false, dropCaches: false, quiet: !testing.Verbose(),
	}
	sum, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sum.notes {
		t.Log("skipped: " + n) // peers not installed, and why
	}
	for _, f := range sum.failures {
		t.Errorf("correctness: %s", f)
	}
	ran, pairs := map[string]int{}, map[string]bool{}
	for _, s := range sum.samples {
		ran[s.method]++
		pairs[s.workload+" "+s.method] = true
	}
	for _, m := range []string{"native", "overlay", "unionfsd", "unionfsd-nopt"} {
		if ran[m] == 0 {
			t.Errorf("method %s produced no samples", m)
		}
	}
	// The workloads of issues 4-6, with every tool installed here.
	want := []string{"import-small native", "import-small unionfsd", "import-small crun-lite-docker", "import-big native",
		"import-big unionfsd", "chown-R overlay", "chown-R overlay-metacopy", "chown-R unionfsd", "chown-R unionfsd-metacopy",
		"chown-R-upper unionfsd-metacopy", "chown-R-upper-apparent overlay",
		// issue 8: the trace's cost (its file checked in every sample)
		"untar unionfsd-trace", "find-warm unionfsd-trace", "untar unionfsd-trace-filtered",
		// issue 13: expired caches, daemon CPU per file
		"find-again-100ms overlay", "find-again-100ms unionfsd", "untar-cpu-per-file unionfsd", "untar native"}
	if _, err := exec.LookPath("umoci"); err == nil {
		want = append(want, "import-small umoci", "import-big umoci")
	}
	if _, err := exec.LookPath("fuse-overlayfs"); err == nil {
		want = append(want, "chown-R fuse-overlayfs")
	}
	if _, err := exec.LookPath("runc"); err == nil {
		want = append(want, "container-start overlay", "container-start-p95 overlay", "container-start unionfsd", "container-start-p95 unionfsd")
	}
	for _, p := range want {
		if !pairs[p] {
			t.Errorf("no sample for %s", p)
		}
	}
	for _, f := range []string{"results.tsv", "report.md", "ratios.svg"} {
		b, err := os.ReadFile(filepath.Join(sum.outDir, f))
		if err != nil || len(b) == 0 {
			t.Errorf("%s missing or empty (%v)", f, err)
		}
	}
	report, _ := os.ReadFile(sum.reportPath)
	if !strings.Contains(string(report), "| find-cold |") {
		t.Errorf("report has no find-cold row")
	}
	if !strings.Contains(string(report), "ratio to unionfsd with default options") {
		t.Errorf("report has no table of unionfsd options against unionfsd")
	}
	if !strings.Contains(string(report), "## Wall time and daemon CPU") {
		t.Errorf("report has no table of daemon CPU next to wall time")
	}
	for _, s := range sum.samples {
		if s.workload == "untar" && s.method == "unionfsd" && !s.hasCPU {
			t.Errorf("untar on unionfsd: no daemon CPU time measured")
		}
		if s.workload == "untar" && s.method == "overlay" && s.hasCPU {
			t.Errorf("untar on overlay has a daemon CPU time")
		}
	}
	assertNoMountsUnder(t, o.cache)
}

// TestChecksCatchWrongView points the workloads at a single layer instead
// of the merged view: the entry-count and copy-up checks must fail.
func TestChecksCatchWrongView(t *testing.T) {
	s, _ := scaleByName("tiny")
	ds, err := openDataset(t.TempDir(), s, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: context.Background(), ds: ds}
	bottom := &instance{m: &method{name: "broken", kind: "overlay"}, root: ds.Bottom}
	if _, err := e.findStat(bottom, false, false); err == nil || !strings.Contains(err.Error(), "check:") {
		t.Errorf("find over the bottom layer alone passed the merged-count check (err %v)", err)
	}
	if _, err := e.readDir(bottom, false); err == nil {
		t.Errorf("readdir of one layer's bigdir passed the merged-count check")
	}
	// A "copy-up" that truncates the file must fail the size check.
	p := filepath.Join(ds.Bottom, copyUpPath("a", s.CopyUpBytes[1], 0))
	if err := os.Truncate(p, 4096); err != nil {
		t.Fatal(err)
	}
	if err := e.checkCopiedUp(bottom, copyUpPath("a", s.CopyUpBytes[1], 0), s.CopyUpBytes[1], block); err == nil {
		t.Errorf("a truncated copy-up passed the size check")
	}
}

// TestTraceCheck: a trace method's sample fails when its trace file does not
// match the method's promise (lines, or none for a filter matching nothing).
func TestTraceCheck(t *testing.T) {
	methods := map[string]*method{}
	for _, m := range allMethods() {
		methods[m.name] = m
	}
	cases := []struct {
		method string
		bytes  int64
		ok     bool
	}{
		{"unionfsd-trace", 0, false},
		{"unionfsd-trace", 300, true},
		{"unionfsd-trace-filtered", 0, true},
		{"unionfsd-trace-filtered", 300, false},
		{"unionfsd", 0, true},
	}
	for _, c := range cases {
		in := &instance{m: methods[c.method], traceFile: "/x/trace.log", traceBytes: c.bytes}
		if err := in.checkTrace(); (err == nil) != c.ok {
			t.Errorf("%s with a %d-byte trace: checkTrace() = %v", c.method, c.bytes, err)
		}
	}
}

// TestProfileSkipsTrace: -profile serves unionfsd from the bench binary,
// which cannot trace, so the trace methods are skipped with the reason.
func TestProfileSkipsTrace(t *testing.T) {
	e := &env{opts: options{profile: true}, unionfsd: "/bin/true", logf: func(string, ...any) {}}
	sum := &summary{}
	ms, err := e.selectMethods([]string{"unionfsd", "unionfsd-trace", "unionfsd-trace-filtered"}, sum)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(methodNames(ms), ","); got != "unionfsd" {
		t.Errorf("-profile kept methods %s, want unionfsd", got)
	}
	if len(sum.notes) != 2 || !strings.Contains(sum.notes[0], "unionfsd-trace skipped: -profile") {
		t.Errorf("notes %q do not say why the trace methods were skipped", sum.notes)
	}
}

// TestFingerprintSeesChanges: the lower-layer fingerprint changes with a
// file's content, mode or mtime.
func TestFingerprintSeesChanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := writePatterned(p, 100, "x"); err != nil {
		t.Fatal(err)
	}
	base, err := fingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	changes := []func() error{
		func() error { return os.WriteFile(p, []byte("y"), 0o644) },
		func() error { return os.Chmod(p, 0o600) },
		func() error { return os.Chtimes(p, fixedTime.Add(1), fixedTime.Add(1)) },
		func() error { return os.Chown(p, chownID, chownID) },
	}
	for i, change := range changes {
		if err := writePatterned(p, 100, "x"); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o644)
		os.Chown(p, 0, 0)
		if err := change(); err != nil {
			t.Fatal(err)
		}
		got, err := fingerprint(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got == base {
			t.Errorf("change %d left the fingerprint unchanged", i)
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the benchmark smoke test needs root (mounts): sudo ./scripts/test.sh")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse: modprobe fuse")
	}
}

func assertNoMountsUnder(t *testing.T, root string) {
	t.Helper()
	mounts, err := inspect.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if strings.HasPrefix(m.Point, root+"/") {
			t.Errorf("mount left behind: %s (%s)", m.Point, m.FSType)
		}
	}
}

// TestProbeOption: a method whose option the unionfsd binary rejects is
// skipped with the binary's answer; one it takes is kept. The fake binaries
// answer as unionfsd does: exit 2 naming an unknown option, or fail later on
// the mountpoint that does not exist.
func TestProbeOption(t *testing.T) {
	dir := t.TempDir()
	rejects := filepath.Join(dir, "old-unionfsd")
	takes := filepath.Join(dir, "new-unionfsd")
	script := "#!/bin/sh\ncase \"$*\" in *%s*) echo \"unionfsd: -o $2: unknown mount option\" >&2; exit 2;; esac\necho \"unionfsd: $5: mountpoint: no such file or directory\" >&2; exit 1\n"
	if err := os.WriteFile(rejects, []byte(fmt.Sprintf(script, "=")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(takes, []byte(fmt.Sprintf(script, "no-such-option")), 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"unionfsd", "unionfsd-nowatch", "unionfsd-nolowerpt", "unionfsd-nouring"}
	e := &env{unionfsd: rejects, logf: func(string, ...any) {}}
	sum := &summary{}
	ms, err := e.selectMethods(names, sum)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(methodNames(ms), ","); got != "unionfsd" {
		t.Errorf("with a binary rejecting the options, methods %s ran, want unionfsd", got)
	}
	if len(sum.notes) != 3 || !strings.Contains(sum.notes[0], "unionfsd-nowatch skipped: old-unionfsd does not take -o watch=off (it says: unionfsd: -o watch=off: unknown mount option)") {
		t.Errorf("notes %q do not list the skipped methods with the binary's answer", sum.notes)
	}
	e = &env{unionfsd: takes, logf: func(string, ...any) {}}
	sum = &summary{}
	if ms, err = e.selectMethods(names, sum); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(methodNames(ms), ","); got != strings.Join(names, ",") || len(sum.notes) != 0 {
		t.Errorf("with a binary taking the options, methods %s ran (notes %q), want all of %v", got, sum.notes, names)
	}
}

// TestFreshFS: the untar and rm-rf samples get a filesystem of their own,
// ext4 like the cache's, that no deletion ever touched; it goes away with
// its image after the sample.
func TestFreshFS(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("no mkfs.ext4 (e2fsprogs)")
	}
	s, _ := scaleByName("tiny")
	e := &env{scratch: t.TempDir(), ds: &Dataset{Scale: s}}
	f, err := e.newFreshFS("fresh-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close() })
	var st, parent unix.Statfs_t
	if err := unix.Statfs(f.dir, &st); err != nil {
		t.Fatal(err)
	}
	unix.Statfs(e.scratch, &parent)
	if st.Type != unix.EXT4_SUPER_MAGIC || st.Fsid == parent.Fsid {
		t.Errorf("fresh fs: type %#x fsid %v, want a new ext4 (the scratch dir: %v)", st.Type, st.Fsid, parent.Fsid)
	}
	if want, _ := freshFSSize(s); int64(st.Blocks)*st.Bsize < want/2 {
		t.Errorf("fresh fs has %d bytes, want about %d", int64(st.Blocks)*st.Bsize, want)
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	if mountedType(f.dir) == "ext4" {
		t.Errorf("%s still mounted after close", f.dir)
	}
	if _, err := os.Stat(f.img); !os.IsNotExist(err) {
		t.Errorf("image %s still there after close (%v)", f.img, err)
	}
}

// TestProcCPU: the daemon CPU reader sees this process's CPU time grow.
func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 0.1 || d > 5 {
		t.Errorf("300 ms of spinning counted as %.2f s of CPU", d)
	}
}

// TestCheckServing: a sample fails when its daemon exited or its mount is
// gone by the end of the workload (the workload then wrote to the bare dir).
func TestCheckServing(t *testing.T) {
	exited := make(chan struct{})
	close(exited)
	dir := t.TempDir()
	cases := []struct {
		in *instance
		ok bool
	}{
		{&instance{m: &method{name: "native", kind: "native"}, root: dir}, true},
		{&instance{m: &method{name: "overlay", kind: "overlay"}, root: dir}, false},
		{&instance{m: &method{name: "unionfsd", kind: "unionfsd"}, root: dir, exited: make(chan struct{})}, false},
		{&instance{m: &method{name: "unionfsd", kind: "unionfsd"}, root: dir, exited: exited, stderr: &capBuffer{max: 100}}, false},
	}
	for i, c := range cases {
		if err := c.in.checkServing(); (err == nil) != c.ok {
			t.Errorf("case %d (%s): checkServing() = %v", i, c.in.m.name, err)
		}
	}
}

// TestSelectWorkloadsOnce: a derived row named in -only next to its parent is
// run and reported once (it was listed twice, so every table showed it twice).
func TestSelectWorkloadsOnce(t *testing.T) {
	ws, err := selectWorkloads(scales["tiny"], []string{"untar", untarCPU})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range ws {
		names = append(names, w.name)
	}
	if got := strings.Join(names, ","); got != "untar,"+untarCPU {
		t.Errorf("-only untar,%s selected %s", untarCPU, got)
	}
}
