package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/unionfs"
)

func TestFormatEvent(t *testing.T) {
	cases := []struct {
		ev   unionfs.Event
		want string
	}{
		{unionfs.Event{Op: "lookup", Path: "/etc/hosts", Layer: 1, Dir: "/layers/B"},
			"lookup /etc/hosts -> layer 1 (/layers/B)"},
		{unionfs.Event{Op: "open", Path: "/etc/hosts", Arg: "rw", Layer: 0, Dir: "/u",
			Effect: []string{"copy-up /etc/hosts from layer 2 (/l/A), 4.0 KiB, 300µs"}},
			"open /etc/hosts rw -> copy-up from layer 2 (/l/A), 4.0 KiB, 300µs"},
		{unionfs.Event{Op: "unlink", Path: "/tmp/x", Layer: -1, Effect: []string{
			"copy-up /tmp from layer 1 (/l), 4.0 KiB, 10µs", "whiteout /upper/tmp/.wh.x"}},
			"unlink /tmp/x -> copy-up /tmp from layer 1 (/l), 4.0 KiB, 10µs; whiteout /upper/tmp/.wh.x"},
		{unionfs.Event{Op: "lookup", Path: "/nope", Layer: -1, Err: syscall.ENOENT}, "lookup /nope -> error ENOENT"},
		{unionfs.Event{Op: "unlink", Path: "/u-only", Layer: -1}, "unlink /u-only -> ok"},
		{unionfs.Event{Op: "rename", Path: "/a", Arg: "to /b", Layer: -1, Err: syscall.EXDEV,
			Effect: []string{"copy-up /a from layer 1 (/l), 1 B, 5µs"}},
			"rename /a to /b -> error EXDEV after copy-up from layer 1 (/l), 1 B, 5µs"},
	}
	for _, c := range cases {
		if got := formatEvent(c.ev); got != c.want {
			t.Errorf("formatEvent:\n got %q\nwant %q", got, c.want)
		}
	}
}

func TestTraceFilters(t *testing.T) {
	to, err := parseTrace("-", []string{"/etc/", "tmp"}, []string{"unlink,rename", "mkdir"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		op, path, arg string
		want          bool
	}{
		{"unlink", "/etc/hosts", "", true},
		{"unlink", "/etc", "", true},
		{"unlink", "/etcetera", "", false},
		{"mkdir", "/tmp/d", "", true},
		{"lookup", "/etc/hosts", "", false},
		{"rename", "/home/x", "to /tmp/x", true},
		{"rename", "/home/x", "to /home/y", false},
	}
	for _, c := range cases {
		if got := to.match(unionfs.Event{Op: c.op, Path: c.path, Arg: c.arg}); got != c.want {
			t.Errorf("match(%s %s %s) = %v, want %v", c.op, c.path, c.arg, got, c.want)
		}
	}
	all, _ := parseTrace("f", nil, nil)
	if !all.match(unionfs.Event{Op: "lookup", Path: "/x"}) {
		t.Error("no filters: an event was dropped")
	}
}

func TestParseTraceFlags(t *testing.T) {
	o, err := parseArgs([]string{"--trace", "u:l", "/mnt"}, 0)
	if err != nil || o.trace.dest != traceStderr || !o.foreground {
		t.Errorf("--trace alone: %+v, %v; want stderr and foreground", o, err)
	}
	o, err = parseArgs([]string{"--trace=/tmp/t.log", "u:l", "/mnt"}, 0)
	if err != nil || o.trace.dest != "/tmp/t.log" || o.foreground {
		t.Errorf("--trace=FILE: %+v, %v; want the file and background", o, err)
	}
	for _, args := range [][]string{
		{"--trace-op", "unlink", "u:l", "/mnt"},
		{"--trace", "--trace-op", "write", "u:l", "/mnt"},
		{"--trace", "--trace-path", "../x", "u:l", "/mnt"},
		{"--trace=", "u:l", "/mnt"},
	} {
		if _, err := parseArgs(args, 0); err == nil {
			t.Errorf("parseArgs(%q): no error", args)
		} else if _, ok := err.(*usageError); !ok {
			t.Errorf("parseArgs(%q): %v is not a usage error", args, err)
		}
	}
}

// stopDaemon ends a background unionfsd and waits for it.
func stopDaemon(t *testing.T, pid int) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitGone(pid, 5*time.Second) {
		t.Fatalf("daemon %d still running 5s after SIGTERM", pid)
	}
}

// TestTraceCLI mounts with --trace=FILE and checks the lines for a read,
// a copy-up, a whiteout and an opaque dir.
func TestTraceCLI(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	log := b.base + "/trace.log"
	pid := mountBackground(t, b, "--timeout", "0", "--trace="+log, b.up+":"+b.l2+":"+b.l1, b.mnt)
	readFile(t, b.mnt+"/a")
	f, err := os.OpenFile(b.mnt+"/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(b.mnt + "/b"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(b.mnt + "/dir"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.mnt+"/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	stopDaemon(t, pid)
	got := readFile(t, log)
	want := []string{
		`^lookup /a -> layer 2 \(` + regexp.QuoteMeta(b.l1) + `\)$`,
		`^open /a ro -> layer 2 \(` + regexp.QuoteMeta(b.l1) + `\)$`,
		`^open /a rw -> copy-up from layer 2 \(` + regexp.QuoteMeta(b.l1) + `\), 10 B, [0-9.]+[µm]?s$`,
		`^unlink /b -> whiteout ` + regexp.QuoteMeta(b.up+"/.wh.b") + `$`,
		`^rmdir /dir -> whiteout ` + regexp.QuoteMeta(b.up+"/.wh.dir") + `$`,
		`^lookup /dir -> error ENOENT$`,
		`^mkdir /dir -> opaque ` + regexp.QuoteMeta(b.up+"/dir/.wh..wh..opq") + `; removed whiteout`,
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)` + w).MatchString(got) {
			t.Errorf("no trace line matching %s in:\n%s", w, got)
		}
	}
	assertNothingLeft(t, b)
}

// TestTraceFilterCLI keeps only the lines asked for.
func TestTraceFilterCLI(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	log := b.base + "/trace.log"
	pid := mountBackground(t, b, "--trace="+log, "--trace-path", "/dir", "--trace-op", "unlink,mkdir",
		b.up+":"+b.l2+":"+b.l1, b.mnt)
	readFile(t, b.mnt+"/dir/x")
	if err := os.Remove(b.mnt + "/dir/x"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(b.mnt + "/a"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.mnt+"/dir/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	stopDaemon(t, pid)
	got := strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	if len(got) != 2 || !strings.HasPrefix(got[0], "unlink /dir/x -> ") || !strings.HasPrefix(got[1], "mkdir /dir/sub -> ") {
		t.Errorf("filtered trace:\n%s\nwant only unlink /dir/x and mkdir /dir/sub", strings.Join(got, "\n"))
	}
	assertNothingLeft(t, b)
}

// servingFor reports whether the foreground unionfsd pid has its mount at
// mnt ready: the mount shows before the daemon is done mounting, and a stop
// signal in between is "interrupted while mounting"; the mount record is
// written after that point.
func servingFor(pid int, mnt string) bool {
	r, err := inspect.LoadRecord(mnt)
	return err == nil && r.PID == pid
}

// TestTraceStderr: --trace alone stays in the foreground and writes to stderr.
func TestTraceStderr(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unionfsdBin, "--trace", "--trace-op", "lookup", b.up+":"+b.l1, b.mnt)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !eventually(5*time.Second, func() bool { return servingFor(cmd.Process.Pid, b.mnt) }) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no mount after 5s; stderr %q", stderr.String())
	}
	readFile(t, b.mnt+"/a")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("foreground unionfsd: %v; stderr %q", err, stderr.String())
	}
	want := "lookup /a -> layer 1 (" + b.l1 + ")\n"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to contain %q", stderr.String(), want)
	}
	assertNothingLeft(t, b)
}

// BenchmarkTrace measures a lookup-bound workload (stat with no kernel
// caching, so every stat is one traced lookup) with tracing off, on but
// filtered away, and on to a discarded stream.
//
//	flock /tmp/unionfsd-fusetest.lock go test -run NONE -bench Trace ./cmd/unionfsd/
func BenchmarkTrace(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to mount")
	}
	off := func() unionfs.Tracer { return nil }
	filtered := func() unionfs.Tracer {
		to, _ := parseTrace("x", []string{"/elsewhere"}, nil)
		return to.tracer(io.Discard)
	}
	all := func() unionfs.Tracer { to, _ := parseTrace("x", nil, nil); return to.tracer(io.Discard) }
	for _, v := range []struct {
		name   string
		tracer func() unionfs.Tracer
	}{{"off", off}, {"filtered", filtered}, {"on", all}} {
		b.Run(v.name, func(b *testing.B) { benchStat(b, v.tracer()) })
	}
}

func benchStat(b *testing.B, tr unionfs.Tracer) {
	base := b.TempDir()
	lower, upper, mnt := filepath.Join(base, "l"), filepath.Join(base, "u"), filepath.Join(base, "m")
	for _, d := range []string{lower + "/d", upper, mnt} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(lower+"/d/f", []byte("x"), 0o644)
	cfg := unionfs.DefaultConfig()
	cfg.Lowers, cfg.Upper = []string{lower}, upper
	cfg.EntryTimeout, cfg.AttrTimeout, cfg.NegativeTimeout = 0, 0, 0
	cfg.Trace = tr
	srv, err := unionfs.Mount(mnt, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if srv.Unmount() != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	var st unix.Stat_t
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := unix.Stat(mnt+"/d/f", &st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTracerCall is the tracer's own cost per event, without FUSE:
// the filter alone, and filter plus formatting and writing.
func BenchmarkTracerCall(b *testing.B) {
	ev := unionfs.Event{Op: "open", Path: "/etc/hosts", Arg: "rw", Layer: 0, Dir: "/u",
		Effect: []string{"copy-up /etc/hosts from layer 2 (/l/A), 4.0 KiB, 300µs"}}
	filtered, _ := parseTrace("x", []string{"/elsewhere"}, nil)
	all, _ := parseTrace("x", nil, nil)
	for name, tr := range map[string]unionfs.Tracer{"filtered": filtered.tracer(io.Discard), "on": all.tracer(io.Discard)} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				tr(ev)
			}
		})
	}
}
