package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/procfs"
	"github.com/unionfsd/unionfsd/internal/units"
)

// method is one way of serving the merged view that the workloads run on.
type method struct {
	name string
	kind string // native, overlay, fuse-overlayfs, unionfs-fuse, unionfsd
	desc string
	pkg  string   // Debian package of a peer's binary
	bin  string   // binary name (peers) or path (unionfsd, set at run time)
	args []string // extra unionfsd flags
	// overlayOpts are extra kernel overlay mount options.
	overlayOpts string
	// workloads, when set, limits the method to workloads where its option
	// makes a difference (keeps a full run short).
	workloads []string
	// trace runs unionfsd with --trace=FILE, FILE beside the sample's upper
	// (args may add filters); traceEmpty says the filters match nothing, so
	// the file must stay empty. Each sample checks the file, then deletes it.
	trace, traceEmpty bool
	// noServe, when set, is why -profile cannot serve the method from the
	// bench binary (see serveUnion); -profile skips it with that reason.
	noServe string
	// probe: args holds an option that older unionfsd binaries reject;
	// the binary is asked once (probeOption) and the method skipped, with
	// the binary's answer, when it does not take it. needs is a file the
	// kernel must have for the option (e.g. the io_uring switch).
	probe   bool
	needs   string
	missing string // why it cannot run here; "" when it can
}

// traceNoMatch is a --trace-path prefix no workload touches.
const traceNoMatch = "/.bench-trace-matches-nothing"

func allMethods() []*method {
	ioOnly := []string{"seq-read-cold", "seq-read-warm", "fio-randread-lower", "fio-randrw-upper", "fio-randrw-lower",
		"copyup-4k", "copyup-1m", "copyup-100m", "copyup-1g", "append", "untar"}
	copyOnly := []string{"copyup-4k", "copyup-4k-sync", "copyup-1m", "copyup-1m-sync", "copyup-100m", "copyup-100m-sync",
		"copyup-1g", "copyup-1g-sync", "append", "fio-randrw-lower"}
	metaOnly := []string{"find-cold", "find-warm", "find-again-*", "readdir", "readdir-stat", "untar", "rm-rf", "rss-find", "rss-after-forget"}
	// Lower files read or written through the union (lower passthrough).
	lowerIO := []string{"seq-read-cold", "seq-read-warm", "fio-randread-lower", "fio-randrw-lower", "copyup-4k", "copyup-4k-sync", "copyup-1m", "append"}
	// Many small requests (the /dev/fuse transport against io_uring).
	requests := []string{"find-cold", "find-warm", "find-again-*", "readdir-stat", "seq-read-warm", "fio-randread-lower", "fio-randrw-upper",
		"copyup-4k", "append", "untar", "rm-rf"}
	newOpt := "has only the options of its own unionfs.Config flags; compare against unionfsd without -profile, or profile the daemon with perf record -g -p PID"
	// The trace costs per operation: the workloads with the most operations
	// per second show it (issue 8).
	traceOnly := []string{"find-cold", "find-warm", "untar", "append", "rm-rf"}
	traceNoServe := "has no --trace (its format and filters live in cmd/unionfsd); compare unionfsd and unionfsd-trace without -profile, or profile the daemon with perf record -g -p PID"
	return []*method{
		{name: "native", kind: "native", desc: "the merged view copied to a plain dir on the same filesystem"},
		{name: "overlay", kind: "overlay", desc: "kernel overlayfs"},
		{name: "fuse-overlayfs", kind: "fuse-overlayfs", desc: "fuse-overlayfs (Debian package)", pkg: "fuse-overlayfs", bin: "fuse-overlayfs"},
		{name: "unionfs-fuse", kind: "unionfs-fuse", desc: "unionfs-fuse with -o cow (Debian package)", pkg: "unionfs-fuse", bin: "unionfs"},
		{name: "unionfsd", kind: "unionfsd", desc: "unionfsd, default options (passthrough on, fsync=1)"},
		{name: "unionfsd-nopt", kind: "unionfsd", desc: "unionfsd --passthrough=false", args: []string{"--passthrough=false"}, workloads: ioOnly},
		{name: "unionfsd-cache", kind: "unionfsd", desc: "unionfsd --timeout 1h (kernel keeps names and attributes, as fuse-overlayfs does by default)", args: []string{"--timeout", "1h"}, workloads: metaOnly},
		{name: "unionfsd-nofsync", kind: "unionfsd", desc: "unionfsd -o fsync=0 (copy-up without fsync, like overlay's volatile)", args: []string{"-o", "fsync=0"}, workloads: copyOnly},
		{name: "unionfsd-trace", kind: "unionfsd", desc: "unionfsd --trace=FILE: one line per operation to a file beside the upper (deleted after each sample)", trace: true, noServe: traceNoServe, workloads: traceOnly},
		{name: "unionfsd-trace-filtered", kind: "unionfsd", desc: "unionfsd --trace=FILE --trace-path with a prefix that matches nothing: every event is built, then dropped by the filter", args: []string{"--trace-path", traceNoMatch}, trace: true, traceEmpty: true, noServe: traceNoServe, workloads: traceOnly},
		// A/B of issue 13's levers, each the default unionfsd with one option
		// changed; skipped (and listed) when the binary does not take it.
		{name: "unionfsd-nowatch", kind: "unionfsd", desc: "unionfsd -o watch=off (no invalidation of kernel caches from watching the layers: the short cache timeouts)", args: []string{"-o", "watch=off"}, probe: true, noServe: newOpt, workloads: metaOnly},
		{name: "unionfsd-nolowerpt", kind: "unionfsd", desc: "unionfsd -o lower_passthrough=off (lower files not passed through in a writable union: strict)", args: []string{"-o", "lower_passthrough=off"}, probe: true, noServe: newOpt, workloads: lowerIO},
		{name: "unionfsd-uring", kind: "unionfsd", desc: "unionfsd -o io_uring=on (FUSE over io_uring)", args: []string{"-o", "io_uring=on"}, probe: true, needs: uringParam, noServe: newOpt, workloads: requests},
		{name: "unionfsd-nouring", kind: "unionfsd", desc: "unionfsd -o io_uring=off (requests through read/writev on /dev/fuse)", args: []string{"-o", "io_uring=off"}, probe: true, noServe: newOpt, workloads: requests},
		// Used by one workload each (issues 4-6).
		{name: "overlay-metacopy", kind: "overlay", desc: "kernel overlayfs -o metacopy=on (the kernel adds redirect_dir=on)", overlayOpts: "metacopy=on", workloads: []string{"chown-R"}},
		{name: "unionfsd-metacopy", kind: "unionfsd", desc: "unionfsd -o metacopy=on (chown, chmod, utimes copy metadata only)", args: []string{"-o", "metacopy=on"}, workloads: []string{"chown-R"}},
		{name: "crun-lite-docker", kind: "unionfsd", desc: "crun-lite import of the docker-save archive (the unionfsd column imports the OCI layout)", workloads: []string{"import-small", "import-big"}},
		{name: "umoci", kind: "umoci", desc: "umoci unpack of the OCI layout, as root (Debian package)", pkg: "umoci", bin: "umoci", workloads: []string{"import-small", "import-big"}},
		{name: "podman", kind: "podman", desc: "podman run --rm with a private --root/--runroot (Debian package)", pkg: "podman", bin: "podman", workloads: []string{"container-start"}},
	}
}

// runs says whether m takes part in workload w.
func (m *method) runs(w *workload) bool {
	if len(w.methods) > 0 && !contains(w.methods, m.kind) {
		return false
	}
	if len(m.workloads) == 0 {
		return true
	}
	for _, p := range m.workloads {
		if p == w.name || strings.HasSuffix(p, "*") && strings.HasPrefix(w.name, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// instance is one fresh mount (or, for native, the plain dir) that one
// workload runs on.
type instance struct {
	m       *method
	root    string // where the workload works: the mount point or the native dir
	upper   string
	work    string
	cmdline string // how it was mounted, for the report
	pid     int    // the FUSE daemon, 0 for kernel methods
	cmd     *exec.Cmd
	exited  chan struct{}
	stderr  *capBuffer
	release func() error // unmounts (once); also run by the emergency cleanup
	trash   func(dir string) error
	// traceFile is unionfsd's --trace file (trace methods); traceBytes is
	// its size once the daemon has exited.
	traceFile  string
	traceBytes int64
	// extra holds values of derived workloads (partOf this one) measured
	// in the same sample, by workload name.
	extra map[string]float64
	// slowExit is how long the daemon took to exit after umount, when
	// that was unusually long (reported as a note).
	slowExit time.Duration
	// fresh is the sample's own filesystem (workload.freshFS): the upper
	// and work dirs are on it (native: the workload's target dir).
	fresh *freshFS
	// cpuSec is the daemon's user+sys CPU time over the timed part
	// (hasCPU: measured; FUSE methods only).
	cpuSec float64
	hasCPU bool
}

// mountInstance gives a fresh union (empty upper) of the data set under
// scratch/<method>, ready for one workload.
func (e *env) mountInstance(m *method, w *workload, profile string) (*instance, error) {
	var fresh *freshFS
	if w.freshFS {
		e.freshCount++
		var err error
		if fresh, err = e.newFreshFS(fmt.Sprintf("fresh-%d", e.freshCount)); err != nil {
			return nil, err
		}
	}
	if m.kind == "native" {
		if err := e.resetNativeFiles(); err != nil {
			fresh.close()
			return nil, err
		}
		return &instance{m: m, root: e.ds.Native, cmdline: "(plain dir " + e.ds.Native + ")", fresh: fresh}, nil
	}
	base := filepath.Join(e.scratch, m.name)
	in := &instance{m: m, root: filepath.Join(base, "mnt"), upper: filepath.Join(base, "upper"), work: filepath.Join(base, "work"), trash: e.toTrash, fresh: fresh}
	if fresh != nil {
		in.upper, in.work = filepath.Join(fresh.dir, "upper"), filepath.Join(fresh.dir, "work")
	}
	if m.trace {
		in.traceFile = filepath.Join(base, "trace.log")
	}
	if err := os.RemoveAll(base); err != nil {
		fresh.close()
		return nil, fmt.Errorf("clean %s: %w", base, err)
	}
	for _, d := range []string{in.root, in.upper, in.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if m.kind == "overlay" {
		err = in.mountOverlay(e.ds)
	} else {
		err = in.startDaemon(e.daemonArgv(m, in, profile))
	}
	if err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

func (in *instance) lowerdir(ds *Dataset) string { return strings.Join(ds.Layers, ":") }

func (in *instance) mountOverlay(ds *Dataset) error {
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", in.lowerdir(ds), in.upper, in.work)
	if in.m.overlayOpts != "" {
		opts += "," + in.m.overlayOpts
	}
	in.cmdline = "mount -t overlay overlay -o " + opts + " " + in.root
	if err := unix.Mount("overlay", in.root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", in.root, err)
	}
	in.release = pending.add(func() error { return unmount(in.root) })
	return nil
}

// daemonArgv is the foreground command line of a FUSE method. Running it in
// the foreground gives the daemon's pid (for RSS) and its exit.
func (e *env) daemonArgv(m *method, in *instance, profile string) []string {
	lower := in.lowerdir(e.ds)
	switch m.kind {
	case "fuse-overlayfs":
		return []string{m.bin, "-f", "-o", fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, in.upper, in.work), in.root}
	case "unionfs-fuse":
		branches := []string{in.upper + "=RW"}
		for _, l := range e.ds.Layers {
			branches = append(branches, l+"=RO")
		}
		return []string{m.bin, "-f", "-o", "cow", strings.Join(branches, ":"), in.root}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, in.upper, in.work)
	if profile != "" {
		// The bench binary serves the same unionfs library with a CPU
		// profile (unionfsd has no profiling hook).
		argv := []string{e.self, serveCommand, "--cpuprofile", profile, "--memprofile", strings.TrimSuffix(profile, ".cpu.pprof") + ".heap.pprof"}
		argv = append(argv, m.args...)
		return append(argv, "-o", opts, in.root)
	}
	argv := []string{e.unionfsd, "-f"}
	if in.traceFile != "" {
		argv = append(argv, "--trace="+in.traceFile)
	}
	argv = append(argv, m.args...)
	return append(argv, "-o", opts, "none", in.root)
}

func (in *instance) startDaemon(argv []string) error {
	in.cmdline = strings.Join(argv, " ")
	cmd := exec.Command(argv[0], argv[1:]...)
	in.stderr = &capBuffer{max: 1 << 20}
	cmd.Stdout, cmd.Stderr = in.stderr, in.stderr
	// Own process group: Ctrl-C reaches the harness, which unmounts first,
	// instead of killing the daemon under a live mount.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	in.cmd, in.pid, in.exited = cmd, cmd.Process.Pid, make(chan struct{})
	go func() { cmd.Wait(); close(in.exited) }()
	in.release = pending.add(in.stopDaemon)
	if err := waitMounted(in.root, "fuse", in.exited, 20*time.Second); err != nil {
		return fmt.Errorf("%s: %v: %s", in.m.name, err, oneLine(in.stderr.String()))
	}
	return nil
}

// stopDaemon unmounts and waits for the daemon to exit (killing it if it
// does not).
func (in *instance) stopDaemon() error {
	err := unmount(in.root)
	if in.cmd == nil {
		return err
	}
	start := time.Now()
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		// A Go daemon prints its goroutines on SIGQUIT: keep them.
		in.cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(time.Second)
		in.cmd.Process.Kill()
		<-in.exited
		dump := filepath.Join(os.TempDir(), fmt.Sprintf("bench-%s-hang-%d.txt", in.m.name, in.pid))
		os.WriteFile(dump, []byte(in.stderr.String()), 0o644)
		if err == nil {
			err = fmt.Errorf("%s: daemon did not exit within 30s of umount; killed (its stderr: %s)", in.m.name, dump)
		}
	}
	if d := time.Since(start); d > 2*time.Second && err == nil {
		in.slowExit = d
	}
	return err
}

// close unmounts, stops the daemon, deletes the trace file and moves the
// upper and work dirs to the trash, which is emptied between rounds.
func (in *instance) close() error {
	var err error
	if in.release != nil {
		err = in.release()
		in.release = nil
	}
	if err == nil && in.traceFile != "" {
		err = in.removeTrace()
	}
	switch {
	case in.fresh != nil:
		// Nothing on it is deleted: the whole filesystem goes.
		if ferr := in.fresh.close(); err == nil {
			err = ferr
		}
	case err == nil && in.upper != "":
		err = in.trash(filepath.Dir(in.upper))
	}
	return err
}

// checkServing says whether the union still served the mount point when
// the workload ended: a daemon that mounted and then gave up (exited or
// unmounted) left the workload writing to the bare dir below, which passes
// every check.
func (in *instance) checkServing() error {
	want := "fuse"
	switch in.m.kind {
	case "native":
		return nil
	case "overlay":
		want = "overlay"
	}
	if in.exited != nil {
		select {
		case <-in.exited:
			return fmt.Errorf("%s: the daemon exited during the sample: %s", in.m.name, oneLine(in.stderr.String()))
		default:
		}
	}
	if t := mountedType(in.root); !strings.HasPrefix(t, want) {
		return fmt.Errorf("%s: %s is no longer a %s mount after the workload (found %q)", in.m.name, in.root, want, t)
	}
	return nil
}

// timed times f and, for a FUSE method, the daemon's CPU time over it.
func (in *instance) timed(f func() error) (float64, error) {
	c0, cerr := in.daemonCPU()
	sec, err := timed(f)
	if cerr == nil {
		if c1, cerr := in.daemonCPU(); cerr == nil {
			in.cpuSec, in.hasCPU = c1-c0, true
		}
	}
	return sec, err
}

// daemonCPU is the daemon's user+sys CPU time so far, in seconds, from
// /proc/PID/stat (all its threads, also those that ended; clock ticks of
// 10 ms).
func (in *instance) daemonCPU() (float64, error) {
	if in.pid == 0 {
		return 0, fmt.Errorf("%s has no daemon", in.m.name)
	}
	return procCPU(in.pid)
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on every
// Linux architecture Go supports).
const userHZ = 100

func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return float64(ut+st) / userHZ, nil
}

// removeTrace notes the size of the trace file and deletes it at once
// rather than with the trash: a trace of a 20k-file workload runs to
// megabytes per sample, and the trash is only emptied between rounds.
func (in *instance) removeTrace() error {
	st, err := os.Stat(in.traceFile)
	if err != nil {
		return fmt.Errorf("%s: --trace file: %w", in.m.name, err)
	}
	in.traceBytes = st.Size()
	return os.Remove(in.traceFile)
}

// checkTrace says whether the trace file came out as the method promises:
// lines for the workload's operations, or none when the filter matches
// nothing. It runs after close.
func (in *instance) checkTrace() error {
	switch {
	case in.m.traceEmpty && in.traceBytes > 0:
		return fmt.Errorf("%s: --trace-path %s matches nothing, yet the trace file got %s", in.m.name, traceNoMatch, units.Bytes(in.traceBytes))
	case in.m.trace && !in.m.traceEmpty && in.traceBytes == 0:
		return fmt.Errorf("%s: --trace wrote nothing to %s", in.m.name, in.traceFile)
	}
	return nil
}

// procStatus reads a KiB field (VmHWM: peak RSS, VmRSS) of the daemon.
func (in *instance) procStatus(field string) (int64, error) {
	if in.pid == 0 {
		return 0, fmt.Errorf("%s has no daemon", in.m.name)
	}
	v, err := procfs.StatusField(strconv.Itoa(in.pid), field)
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, fmt.Errorf("/proc/%d/status: empty %s", in.pid, field)
	}
	return strconv.ParseInt(v[0], 10, 64)
}

// restoreNative undoes what the previous round's workloads did to the
// plain dir, so each round starts from the same state as a fresh union. It
// runs between rounds, before the trash is emptied (see settle).
func (e *env) restoreNative() error {
	n := e.ds.Native
	for _, p := range []string{"untar", "fio/upper.bin"} {
		if err := os.RemoveAll(filepath.Join(n, p)); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(filepath.Join(n, rmTreeDir)); os.IsNotExist(err) {
		if err := os.MkdirAll(filepath.Join(n, rmTreeDir), 0o755); err != nil {
			return err
		}
		if err := copyTree(filepath.Join(e.ds.Bottom, rmTreeDir), filepath.Join(n, rmTreeDir)); err != nil {
			return err
		}
	}
	return e.resetNativeFiles()
}

// resetNativeFiles is the per-sample part of the restore: cheap, and it
// deletes no inodes.
func (e *env) resetNativeFiles() error {
	return os.Truncate(filepath.Join(e.ds.Native, appendFile), e.ds.Scale.AppendBytes)
}

// toTrash moves a used instance dir out of the way; deleting it at once
// would slow down the next sample (see settle).
func (e *env) toTrash(dir string) error {
	e.trashed++
	if err := os.MkdirAll(e.trashDir(), 0o755); err != nil {
		return err
	}
	return os.Rename(dir, filepath.Join(e.trashDir(), fmt.Sprint(e.trashed)))
}

func (e *env) trashDir() string { return filepath.Join(e.scratch, "trash") }

// settle runs before the first round and between rounds: it restores the
// native dir, empties the trash, writes everything back and drops the
// caches. On ext4 without a journal (this machine's root), creating a file
// in a group with many inodes freed in the last 60 s (360 s while their
// inode table block is dirty) checks each of them in the buffer cache
// (recently_deleted() in ext4_new_inode) before taking a free one: deleting
// one sample's 20k-file upper right before the next sample made that
// sample's creates up to 30x slower, whichever method came next. Dropping
// the clean buffers ends that (a block not in the cache counts as old).
func (e *env) settle() error {
	if err := e.restoreNative(); err != nil {
		return err
	}
	if err := os.RemoveAll(e.trashDir()); err != nil {
		return err
	}
	return e.dropCaches(3)
}

// capBuffer keeps the first max bytes written to it (a daemon's stderr).
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		c.buf.Write(p[:room])
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
