package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// workload is one timed operation. run gets a fresh instance (a new mount
// with an empty upper, or the restored native dir) and returns the measured
// value; an error marks the method as failing this workload (a correctness
// check that failed or an operation that broke).
type workload struct {
	name string
	unit string // "s" (lower is better) or "MiB"
	what string // one line for the report
	cmd  string // the command (or its equivalent) that is timed
	// methods, when set, lists the method kinds this workload applies to.
	methods []string
	// base is the method whose value the ratios divide by ("" = overlay).
	base string
	// touches are paths in the layers the workload writes through the union:
	// they are fingerprinted after it, to prove the lower layers unchanged.
	touches  []string
	needs    string // "fio", "container": a tool the workload needs
	ownMount bool   // runs its own mounts (container start)
	// nativeLast: native frees many inodes here, which would slow down the
	// creates of the methods after it (see settle), so it always goes last.
	nativeLast bool
	target     float64
	targetOf   string // what the target is a ratio to, for the report
	// maxValue is a goal on the value itself (in unit), not a ratio.
	maxValue float64
	// targetMethods are judged against the goal (default: unionfsd).
	targetMethods []string
	// partOf names the workload whose samples also measure this one (it
	// is not run by itself; see instance.extra).
	partOf string
	// freshFS puts each sample's upper and work dirs (native: its target)
	// on a filesystem made for the sample, so creates get never-used
	// inodes (see freshfs.go).
	freshFS bool
	// showCPU lists the workload in the report's table of wall time next
	// to the daemon's CPU time.
	showCPU bool
	run     func(e *env, in *instance) (float64, error)
}

// checkf reports a failed correctness check.
func checkf(format string, args ...any) error { return fmt.Errorf("check: "+format, args...) }

func timed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}

func allWorkloads(s Scale) []*workload {
	ws := []*workload{
		{name: "find-cold", unit: "s", target: 1.0, showCPU: true,
			what: fmt.Sprintf("find+stat of %d merged entries, fresh mount, caches dropped", s.TreeEntries()),
			cmd:  "echo 3 >/proc/sys/vm/drop_caches; find MNT/tree -printf '%s %y\\n'",
			run:  func(e *env, in *instance) (float64, error) { return e.findStat(in, true, false) }},
		{name: "find-warm", unit: "s", target: 1.1, showCPU: true,
			what: "the same find+stat again on the same mount",
			cmd:  "find MNT/tree -printf '%s %y\\n' (second run)",
			run:  func(e *env, in *instance) (float64, error) { return e.findStat(in, false, true) }},
	}
	for _, d := range s.FindAgainAfter {
		ws = append(ws, &workload{name: "find-again-" + durLabel(d), unit: "s", target: 1.1, showCPU: true,
			what: fmt.Sprintf("the same find+stat again, %v after the first run on the same mount (kernel caches older than that have expired)", d),
			cmd:  fmt.Sprintf("find MNT/tree -printf '%%s %%y\\n'; sleep %g; find MNT/tree -printf '%%s %%y\\n' (timed)", d.Seconds()),
			run:  func(e *env, in *instance) (float64, error) { return e.findAgain(in, d) }})
	}
	ws = append(ws, []*workload{
		{name: "readdir", unit: "s",
			what: fmt.Sprintf("list a dir of %d entries merged from two layers (fresh mount)", s.BigDirEntries),
			cmd:  "getdents64 of MNT/bigdir (as ls -f)",
			run:  func(e *env, in *instance) (float64, error) { return e.readDir(in, false) }},
		{name: "readdir-stat", unit: "s", target: 1.5,
			what: fmt.Sprintf("list and lstat each of the %d entries (fresh mount)", s.BigDirEntries),
			cmd:  "getdents64 + lstat of each entry of MNT/bigdir (as ls -l without xattrs)",
			run:  func(e *env, in *instance) (float64, error) { return e.readDir(in, true) }},
		{name: "seq-read-cold", unit: "s", target: 1.1,
			what: fmt.Sprintf("read a %s lower file, caches dropped", humanBytes(s.SeqBytes)),
			cmd:  "echo 3 >/proc/sys/vm/drop_caches; read(2) loop with 1 MiB buffer (dd if=MNT/big/seq.bin of=/dev/null bs=1M)",
			run:  func(e *env, in *instance) (float64, error) { return e.seqRead(in, true) }},
		{name: "seq-read-warm", unit: "s", target: 1.1,
			what: "read it again on the same mount",
			cmd:  "the same read loop, second time",
			run:  func(e *env, in *instance) (float64, error) { return e.seqRead(in, false) }},
		{name: "fio-randread-lower", unit: "s", target: 1.1, needs: "fio",
			what: fmt.Sprintf("fio 4k random read of %s from the %s lower file (backing file cached, fresh mount)", humanBytes(s.FioIOBytes), humanBytes(s.SeqBytes)),
			cmd:  fioCmd("MNT/big/seq.bin", "randread", s.SeqBytes, s.FioIOBytes),
			run: func(e *env, in *instance) (float64, error) {
				return e.fio(in, seqFile, "randread", s.SeqBytes, false)
			}},
		{name: "fio-randrw-upper", unit: "s", target: 1.1, needs: "fio",
			what: fmt.Sprintf("fio 4k random 50/50 read/write of %s on a %s upper file", humanBytes(s.FioIOBytes), humanBytes(s.FioFileBytes)),
			cmd:  fioCmd("MNT/fio/upper.bin", "randrw", s.FioFileBytes, s.FioIOBytes),
			run: func(e *env, in *instance) (float64, error) {
				return e.fio(in, "fio/upper.bin", "randrw", s.FioFileBytes, true)
			}},
		{name: "fio-randrw-lower", unit: "s", target: 1.1, needs: "fio", touches: []string{"fio"},
			what: fmt.Sprintf("the same on a %s lower file (copy-up at open is outside fio's clock)", humanBytes(s.FioFileBytes)),
			cmd:  fioCmd("MNT/fio/lower.bin", "randrw", s.FioFileBytes, s.FioIOBytes),
			run: func(e *env, in *instance) (float64, error) {
				return e.fio(in, fioLower, "randrw", s.FioFileBytes, false)
			}},
	}...)
	for i, size := range s.CopyUpBytes {
		ws = append(ws, copyUpWorkloads(s, i, size)...)
	}
	ws = append(ws,
		&workload{name: "append", unit: "s", touches: []string{"append"},
			what: fmt.Sprintf("%d appends of 4 KiB, each open/write/close, to a copied-up %s file", s.AppendWrites, humanBytes(s.AppendBytes)),
			cmd:  "open(O_WRONLY|O_APPEND); write 4 KiB; close -- repeated",
			run:  (*env).appendWorkload},
		&workload{name: "untar", unit: "s", target: 3, freshFS: true, showCPU: true,
			what: fmt.Sprintf("untar %d small files into a new dir, upper on a new ext4 (never-used inodes; tar file in the page cache)", s.TarFiles),
			cmd:  "tar -xf untar.tar -C MNT/untar",
			run:  (*env).untar},
		&workload{name: untarCPU, unit: "us", partOf: "untar", base: "fuse-overlayfs", target: 1, targetOf: "fuse-overlayfs",
			methods: []string{"fuse-overlayfs", "unionfs-fuse", "unionfsd"},
			what:    fmt.Sprintf("daemon CPU (user+sys) over that untar, per file (%d files)", s.TarFiles),
			cmd:     "utime+stime of /proc/DAEMON/stat after tar minus before, / files"},
		&workload{name: "rm-rf", unit: "s", target: 2, touches: []string{rmTreeDir}, nativeLast: true, freshFS: true, showCPU: true,
			what: fmt.Sprintf("rm -rf of a tree of %d lower files", s.RmFiles),
			cmd:  "rm -rf MNT/rmtree",
			run:  (*env).rmRF},
		&workload{name: "container-start", unit: "s", needs: "container", ownMount: true, target: 1.3,
			methods: []string{"native", "overlay", "unionfsd", "podman"},
			what:    fmt.Sprintf("start a busybox container running true and remove it: p50 of %d starts", s.ContainerStarts),
			cmd:     "native: runc run (plain rootfs); overlay: mount overlay + runc run + umount; unionfsd: crun-lite run --rm busybox true; podman: podman run --rm --network none busybox true",
			run:     (*env).containerStart},
		&workload{name: "container-start-p95", unit: "s", partOf: "container-start", target: 1.3,
			methods: []string{"native", "overlay", "unionfsd", "podman"},
			what:    fmt.Sprintf("the same starts: p95 of %d", s.ContainerStarts),
			cmd:     "(measured with container-start)"},
		&workload{name: "import-small", unit: "s", needs: "import", ownMount: true, base: "native", target: 1.3, targetOf: "tar -xf",
			methods: []string{"native", "umoci", "unionfsd"}, targetMethods: []string{"unionfsd", "crun-lite-docker"},
			what: fmt.Sprintf("import + extract a layer of %d small files (uncompressed); native = tar -xf", s.ImportFiles),
			cmd:  "native: tar -xf layer.tar -C DIR; umoci: umoci unpack --image OCI:small BUNDLE; unionfsd: crun-lite --root NEWSTORE -q import OCI (crun-lite-docker: docker.tar); each + sync",
			run:  func(e *env, in *instance) (float64, error) { return e.imageImport(in, "small") }},
		&workload{name: "import-big", unit: "s", needs: "import", ownMount: true, base: "native", target: 1.1, targetOf: "tar -xf",
			methods: []string{"native", "umoci", "unionfsd"}, targetMethods: []string{"unionfsd", "crun-lite-docker"},
			what: fmt.Sprintf("import + extract a layer holding one %s file; native = tar -xf (disk speed)", humanBytes(s.ImportBigBytes)),
			cmd:  "as import-small, with the big layer",
			run:  func(e *env, in *instance) (float64, error) { return e.imageImport(in, "big") }},
		&workload{name: "chown-R", unit: "s", touches: []string{chownDir}, base: "fuse-overlayfs", target: 1, targetOf: "fuse-overlayfs",
			methods: []string{"overlay", "fuse-overlayfs", "unionfsd"}, targetMethods: []string{"unionfsd", "unionfsd-metacopy"},
			what: fmt.Sprintf("chown -R of a lower tree of %d files, %s", s.ChownFiles, humanBytes(s.ChownBytes)),
			cmd:  fmt.Sprintf("chown -R %d:%d MNT/%s; sync", chownID, chownID, chownDir),
			run:  (*env).chownR},
		&workload{name: "chown-R-upper", unit: "%", partOf: "chown-R", maxValue: 5,
			methods: []string{"overlay", "fuse-overlayfs", "unionfsd"}, targetMethods: []string{"unionfsd", "unionfsd-metacopy"},
			what: "data bytes in the upper's files after that chown (holes excluded), % of the tree's data bytes",
			cmd:  "sum of SEEK_DATA..SEEK_HOLE extents of the files in UPPER"},
		&workload{name: "chown-R-upper-du", unit: "%", partOf: "chown-R",
			methods: []string{"overlay", "fuse-overlayfs", "unionfsd"},
			what:    "blocks allocated in the upper after that chown (incl. dirs and ext4 xattr blocks), % of the tree's data bytes",
			cmd:     "du -s --block-size=1 UPPER"},
		&workload{name: "chown-R-upper-apparent", unit: "%", partOf: "chown-R",
			methods: []string{"overlay", "fuse-overlayfs", "unionfsd"},
			what:    "apparent size of the upper after that chown, % of the tree's data bytes (metacopy files keep their size)",
			cmd:     "du -sb UPPER"},
		&workload{name: "rss-find", unit: "MiB", base: "fuse-overlayfs", target: 1.5, targetOf: "fuse-overlayfs",
			methods: []string{"fuse-overlayfs", "unionfs-fuse", "unionfsd"},
			what:    fmt.Sprintf("daemon peak RSS (VmHWM) after find+stat over %d entries", s.TreeEntries()),
			cmd:     "find MNT/tree -printf '%s %y\\n'; grep VmHWM /proc/DAEMON/status",
			run:     func(e *env, in *instance) (float64, error) { return e.rss(in, false) }},
		&workload{name: "rss-after-forget", unit: "MiB", base: "fuse-overlayfs",
			methods: []string{"fuse-overlayfs", "unionfs-fuse", "unionfsd"},
			what:    "daemon RSS after that find once the kernel forgot the inodes (bounded memory)",
			cmd:     "find ...; echo 2 >/proc/sys/vm/drop_caches; sleep 1; grep VmRSS /proc/DAEMON/status",
			run:     func(e *env, in *instance) (float64, error) { return e.rss(in, true) }},
	)
	return ws
}

// copyUpWorkloads are the first write to lower files of one size, without
// and with fsync before close. Each uses its own file set (a, b), since a
// file is copied up only once per upper.
func copyUpWorkloads(s Scale, idx int, size int64) []*workload {
	names := []string{"4k", "1m", "100m", "1g"}
	count := 1
	if idx == 0 {
		count = s.CopyUpSmallCount
	}
	var ws []*workload
	for _, sync := range []bool{false, true} {
		set, suffix, cmd := "a", "", "open(O_WRONLY); pwrite 4 KiB at 0; close"
		if sync {
			set, suffix, cmd = "b", "-sync", "open(O_WRONLY); pwrite 4 KiB at 0; fsync; close"
		}
		w := &workload{
			name: "copyup-" + names[idx] + suffix, unit: "s", touches: []string{copyUpDir},
			what: fmt.Sprintf("first write to %d lower file(s) of %s%s", count, humanBytes(size), map[bool]string{true: ", with fsync", false: ""}[sync]),
			cmd:  cmd + " (lower file already in the page cache)",
		}
		switch {
		case idx == 0 && !sync:
			w.target = 1.2
		case idx == 3 && sync:
			w.target = 0.2
		}
		w.run = func(e *env, in *instance) (float64, error) { return e.copyUp(in, set, size, count, sync) }
		ws = append(ws, w)
	}
	return ws
}

func fioCmd(file, rw string, size, io int64) string {
	return fmt.Sprintf("fio --name=bench --filename=%s --rw=%s --rwmixread=50 --bs=4k --size=%d --io_size=%d --ioengine=psync --invalidate=0 --randrepeat=1 --norandommap --output-format=json (time: the I/Os' summed latency)",
		file, rw, size, io)
}

// countWriter counts lines.
type countWriter struct{ lines int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func (e *env) command(name string, args ...string) *exec.Cmd {
	return exec.CommandContext(e.ctx, name, args...)
}

func (e *env) runFind(dir string) (int, error) {
	var out countWriter
	var stderr bytes.Buffer
	cmd := e.command("find", dir, "-printf", "%s %y\n")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("find %s: %v: %s", dir, err, oneLine(stderr.String()))
	}
	return out.lines, nil
}

func (e *env) findStat(in *instance, cold, warm bool) (float64, error) {
	dir := filepath.Join(in.root, treeDir)
	want := e.ds.Scale.TreeEntries()
	if warm {
		if _, err := e.runFind(dir); err != nil {
			return 0, err
		}
	}
	if cold {
		if err := e.dropCaches(3); err != nil {
			return 0, err
		}
	}
	var n int
	sec, err := in.timed(func() (err error) { n, err = e.runFind(dir); return err })
	if err == nil && n != want {
		err = checkf("find listed %d entries of %s, want %d", n, dir, want)
	}
	return sec, err
}

// findAgain runs find+stat on a fresh mount, waits d and times it again.
func (e *env) findAgain(in *instance, d time.Duration) (float64, error) {
	dir := filepath.Join(in.root, treeDir)
	if _, err := e.runFind(dir); err != nil {
		return 0, err
	}
	select {
	case <-time.After(d):
	case <-e.ctx.Done():
		return 0, e.ctx.Err()
	}
	var n int
	sec, err := in.timed(func() (err error) { n, err = e.runFind(dir); return err })
	if want := e.ds.Scale.TreeEntries(); err == nil && n != want {
		err = checkf("find listed %d entries of %s, want %d", n, dir, want)
	}
	return sec, err
}

// durLabel names a pause in a workload name: 2s, 10s, 100ms.
func durLabel(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func (e *env) readDir(in *instance, stat bool) (float64, error) {
	dir := filepath.Join(in.root, bigDirName)
	var names []string
	sec, err := in.timed(func() error {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		names, err = f.Readdirnames(-1)
		f.Close()
		if err != nil || !stat {
			return err
		}
		for _, n := range names {
			if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && len(names) != e.ds.Scale.BigDirEntries {
		err = checkf("%s has %d entries, want %d", dir, len(names), e.ds.Scale.BigDirEntries)
	}
	return sec, err
}

func (e *env) seqRead(in *instance, cold bool) (float64, error) {
	p := filepath.Join(in.root, seqFile)
	if cold {
		if err := e.dropCaches(3); err != nil {
			return 0, err
		}
	} else if _, err := readAll(p); err != nil {
		return 0, err
	}
	var n int64
	sec, err := in.timed(func() (err error) { n, err = readAll(p); return err })
	if err == nil && n != e.ds.Scale.SeqBytes {
		err = checkf("read %d bytes of %s, want %d", n, p, e.ds.Scale.SeqBytes)
	}
	return sec, err
}

// readAll reads p to the end with 1 MiB reads, as dd bs=1M does.
func readAll(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", p, err)
		}
	}
}

// fio times fio on rel. The file's backing copy is read first so every
// method starts with it in the page cache (the cost measured is the
// union's, not the disk's); upper files are written through the mount.
func (e *env) fio(in *instance, rel, rw string, size int64, create bool) (float64, error) {
	p := filepath.Join(in.root, rel)
	if create {
		if err := writeFileThrough(p, size); err != nil {
			return 0, err
		}
	} else if _, err := readAll(e.backingPath(in, rel)); err != nil {
		return 0, err
	}
	var stdout, stderr bytes.Buffer
	cmd := e.command("fio", "--name=bench", "--filename="+p, "--rw="+rw, "--rwmixread=50", "--bs=4k",
		"--size="+strconv.FormatInt(size, 10), "--io_size="+strconv.FormatInt(e.ds.Scale.FioIOBytes, 10),
		"--ioengine=psync", "--invalidate=0", "--randrepeat=1", "--norandommap", "--output-format=json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("fio %s: %v: %s", p, err, oneLine(stderr.String()))
	}
	type dir struct {
		IOBytes  int64 `json:"io_bytes"`
		TotalIOs int64 `json:"total_ios"`
		Lat      struct {
			Mean float64 `json:"mean"`
		} `json:"lat_ns"`
	}
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  dir `json:"read"`
			Write dir `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(jsonPart(stdout.Bytes()), &res); err != nil || len(res.Jobs) != 1 {
		return 0, fmt.Errorf("fio %s: unreadable output: %v", p, err)
	}
	j := res.Jobs[0]
	// With one synchronous job, the summed I/O latencies are the time spent
	// in read(2)/write(2), in ns (fio's job_runtime has only ms).
	sec := (j.Read.Lat.Mean*float64(j.Read.TotalIOs) + j.Write.Lat.Mean*float64(j.Write.TotalIOs)) / 1e9
	if j.Error != 0 {
		return sec, checkf("fio %s: error %d", p, j.Error)
	}
	if got := j.Read.IOBytes + j.Write.IOBytes; got != e.ds.Scale.FioIOBytes {
		return sec, checkf("fio %s moved %d bytes, want %d", p, got, e.ds.Scale.FioIOBytes)
	}
	if st, err := os.Stat(p); err != nil || st.Size() != size {
		return sec, checkf("%s: size after fio %v (%v), want %d", p, sizeOf(st), err, size)
	}
	return sec, nil
}

// jsonPart skips anything fio prints before its JSON object.
func jsonPart(b []byte) []byte {
	if i := bytes.IndexByte(b, '{'); i > 0 {
		return b[i:]
	}
	return b
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return -1
	}
	return st.Size()
}

// backingPath is where rel lives below the union: the native copy, or the
// bottom layer.
func (e *env) backingPath(in *instance, rel string) string {
	if in.m.kind == "native" {
		return filepath.Join(e.ds.Native, rel)
	}
	return filepath.Join(e.ds.Bottom, rel)
}

// writeFileThrough creates p with size pseudo-random bytes and fsyncs it.
func writeFileThrough(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, io.LimitReader(newRandReader(7), size), make([]byte, 1<<20)); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// block is what the copy-up and append workloads write.
var block = bytes.Repeat([]byte("unionfsd-bench!\n"), 256) // 4 KiB

func (e *env) copyUp(in *instance, set string, size int64, count int, sync bool) (float64, error) {
	paths := make([]string, count)
	for i := range paths {
		paths[i] = copyUpPath(set, size, i)
	}
	n := int64(len(block))
	if size < n {
		n = size
	}
	// The lower files are read into the page cache first, so every method
	// copies from memory (otherwise the first method of a round pays the
	// disk read for all the others).
	for _, rel := range paths {
		if _, err := readAll(e.backingPath(in, rel)); err != nil {
			return 0, err
		}
	}
	sec, err := in.timed(func() error {
		for _, rel := range paths {
			if err := writeAt(filepath.Join(in.root, rel), block[:n], sync); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return sec, err
	}
	for _, rel := range paths {
		if err := e.checkCopiedUp(in, rel, size, block[:n]); err != nil {
			return sec, err
		}
	}
	return sec, nil
}

func writeAt(p string, data []byte, sync bool) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	return f.Close()
}

// checkCopiedUp checks through the mount that rel kept its size, starts with
// head and ends like the bottom layer's copy (the copy-up was complete).
func (e *env) checkCopiedUp(in *instance, rel string, size int64, head []byte) error {
	p := filepath.Join(in.root, rel)
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.Size() != size {
		return checkf("%s: size %d after copy-up, want %d", p, st.Size(), size)
	}
	got := make([]byte, len(head))
	if err := readAt(p, got, 0); err != nil {
		return err
	}
	if !bytes.Equal(got, head) {
		return checkf("%s: first %d bytes are not what was written", p, len(head))
	}
	tail := int64(4096)
	if size-tail < int64(len(head)) {
		return nil
	}
	want, have := make([]byte, tail), make([]byte, tail)
	if err := readAt(filepath.Join(e.ds.Bottom, rel), want, size-tail); err != nil {
		return err
	}
	if err := readAt(p, have, size-tail); err != nil {
		return err
	}
	if !bytes.Equal(want, have) {
		return checkf("%s: last 4 KiB differ from the lower file's (incomplete copy-up)", p)
	}
	return nil
}

func readAt(p string, buf []byte, off int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}

func (e *env) appendWorkload(in *instance) (float64, error) {
	p := filepath.Join(in.root, appendFile)
	if err := writeAt(p, block, true); err != nil { // the copy-up, untimed
		return 0, err
	}
	k := e.ds.Scale.AppendWrites
	sec, err := in.timed(func() error {
		for i := 0; i < k; i++ {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			if _, err := f.Write(block); err != nil {
				f.Close()
				return fmt.Errorf("append %s: %w", p, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return sec, err
	}
	want := e.ds.Scale.AppendBytes + int64(k*len(block))
	if st, err := os.Stat(p); err != nil || st.Size() != want {
		return sec, checkf("%s: size %d after appends (%v), want %d", p, sizeOf(st), err, want)
	}
	return sec, nil
}

// untarCPU is the derived row of the daemon's CPU per untarred file.
const untarCPU = "untar-cpu-per-file"

func (e *env) untar(in *instance) (float64, error) {
	dir := filepath.Join(in.root, "untar")
	if in.m.kind == "native" && in.fresh != nil {
		dir = filepath.Join(in.fresh.dir, "untar")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, err
	}
	// Every method reads the tar file from the page cache (the first one
	// after a cache drop would read it from the disk for the others).
	if err := warmInput(e.ds.Tar); err != nil {
		return 0, err
	}
	unix.Sync()
	sec, err := in.timed(func() error {
		out, err := e.command("tar", "-xf", e.ds.Tar, "-C", dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tar -xf %s -C %s: %v: %s", e.ds.Tar, dir, err, oneLine(string(out)))
		}
		return nil
	})
	if err != nil {
		return sec, err
	}
	n, err := e.runFind(dir)
	if err != nil {
		return sec, err
	}
	if want := tarEntries(e.ds.Scale.TarFiles) + 1; n != want {
		return sec, checkf("%s has %d entries after untar, want %d", dir, n, want)
	}
	if in.hasCPU {
		in.extra = map[string]float64{untarCPU: in.cpuSec * 1e6 / float64(e.ds.Scale.TarFiles)}
	}
	return sec, nil
}

func (e *env) rmRF(in *instance) (float64, error) {
	dir := filepath.Join(in.root, rmTreeDir)
	if n, err := e.runFind(dir); err != nil || n < e.ds.Scale.RmFiles {
		return 0, checkf("%s has %d entries before rm -rf (%v), want at least %d", dir, n, err, e.ds.Scale.RmFiles)
	}
	sec, err := in.timed(func() error {
		out, err := e.command("rm", "-rf", dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("rm -rf %s: %v: %s", dir, err, oneLine(string(out)))
		}
		return nil
	})
	if err != nil {
		return sec, err
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		return sec, checkf("%s still there after rm -rf (%v)", dir, err)
	}
	names, err := readNames(in.root)
	if err != nil {
		return sec, err
	}
	if contains(names, rmTreeDir) {
		return sec, checkf("%s still listed in %s after rm -rf", rmTreeDir, in.root)
	}
	return sec, nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (e *env) rss(in *instance, forget bool) (float64, error) {
	dir := filepath.Join(in.root, treeDir)
	n, err := e.runFind(dir)
	if err != nil {
		return 0, err
	}
	if want := e.ds.Scale.TreeEntries(); n != want {
		return 0, checkf("find listed %d entries of %s, want %d", n, dir, want)
	}
	field := "VmHWM"
	if forget {
		field = "VmRSS"
		if err := e.dropCaches(2); err != nil {
			return 0, err
		}
		time.Sleep(time.Second)
	}
	kb, err := in.procStatus(field)
	return float64(kb) / 1024, err
}
