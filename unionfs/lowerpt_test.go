package unionfs

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// lowerPT mounts a union whose lower holds the given files, with lower
// passthrough on (the default), and returns it with the lower's
// fingerprint, which no test may change.
func lowerPT(t *testing.T, tweak func(*Config), files map[string]string) (*testUnion, string) {
	t.Helper()
	tu := newLayers(t, 1)
	for name, content := range files {
		writeFile(t, tu.lowers[0]+"/"+name, content)
	}
	tu.mount(t, tweak)
	return tu, testsupport.Fingerprint(t, tu.lowers[0])
}

// readAt reads the whole of f from offset 0 (a short file).
func readAt(t *testing.T, f *os.File) string {
	t.Helper()
	buf := make([]byte, 100)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 && err.Error() != "EOF" {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	return string(buf[:n])
}

func readMerged(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func statIno(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Stat(p, &st))
	return st.Ino
}

// checkLower fails when the lower layer changed.
func checkLower(t *testing.T, tu *testUnion, before string) {
	t.Helper()
	if after := testsupport.Fingerprint(t, tu.lowers[0]); after != before {
		t.Errorf("lower layer changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestLowerPTWriteOpens opens a lower file for reading, then for writing in
// each way a writer can: the write-open succeeds (the VFS retries it on the
// file's new node), writes go to the upper, the reader keeps reading the
// lower copy, new opens see the new data, st_ino does not change, and the
// lower layer is untouched.
func TestLowerPTWriteOpens(t *testing.T) {
	opens := []struct {
		name  string
		write func(p string) error
		want  string
	}{
		{"O_WRONLY", func(p string) error { return writeAtPath(p, os.O_WRONLY, "UPPER") }, "UPPER data"},
		{"O_RDWR", func(p string) error { return writeAtPath(p, os.O_RDWR, "UPPER") }, "UPPER data"},
		{"O_TRUNC", func(p string) error { return writeAtPath(p, os.O_WRONLY|os.O_TRUNC, "UPPER") }, "UPPER"},
		{"O_APPEND", func(p string) error { return writeAtPath(p, os.O_WRONLY|os.O_APPEND, "+") }, "lower data+"},
		{"truncate", func(p string) error { return os.Truncate(p, 3) }, "low"},
		{"O_CREAT", func(p string) error { return writeAtPath(p, os.O_WRONLY|os.O_CREATE, "UPPER") }, "UPPER data"},
	}
	for _, o := range opens {
		t.Run(o.name, func(t *testing.T) {
			tu, lower := lowerPT(t, nil, map[string]string{"d/f": "lower data"})
			p := tu.m("d/f")
			ino := statIno(t, p)
			r, err := os.Open(p)
			must(t, err)
			defer r.Close()
			if got := readAt(t, r); got != "lower data" {
				t.Fatalf("reader reads %q", got)
			}
			if err := o.write(p); err != nil {
				t.Fatalf("write after a reader opened: %v", err)
			}
			if got := readMerged(t, p); got != o.want {
				t.Errorf("new open reads %q, want %q", got, o.want)
			}
			if got := readMerged(t, tu.upper+"/d/f"); got != o.want {
				t.Errorf("upper holds %q, want %q", got, o.want)
			}
			if got := readAt(t, r); got != "lower data" {
				t.Errorf("reader opened before the copy-up reads %q, want the lower copy", got)
			}
			var st syscall.Stat_t
			must(t, syscall.Fstat(int(r.Fd()), &st))
			if st.Ino != ino {
				t.Errorf("fstat of the reader: ino %d, want %d", st.Ino, ino)
			}
			if got := statIno(t, p); got != ino {
				t.Errorf("st_ino %d after copy-up, %d before", got, ino)
			}
			// A second writer, with the first reader still open, needs
			// no new split.
			must(t, writeAtPath(p, os.O_RDWR, "2"))
			checkLower(t, tu, lower)
		})
	}
}

func writeAtPath(p string, flags int, s string) error {
	f, err := os.OpenFile(p, flags, 0)
	if err != nil {
		return err
	}
	if flags&os.O_APPEND != 0 {
		_, err = f.Write([]byte(s))
	} else {
		_, err = f.WriteAt([]byte(s), 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestLowerPTProcFdReopen reopens a reader of a lower file through
// /proc/self/fd. The VFS does not retry such an open on ESTALE (the magic
// link leads to the same inode again): reading gets the reader's lower
// copy; writing fails with ESTALE once the name has a new node (and when
// this open is the one that copies up), and never writes the lower.
func TestLowerPTProcFdReopen(t *testing.T) {
	tu, lower := lowerPT(t, nil, map[string]string{"f": "lower data"})
	p := tu.m("f")
	r, err := os.Open(p)
	must(t, err)
	defer r.Close()
	proc := "/proc/self/fd/" + strconv.Itoa(int(r.Fd()))

	// The first writer comes through the reader's fd: the copy-up happens,
	// the open fails with ESTALE.
	_, err = os.OpenFile(proc, os.O_WRONLY, 0)
	if !errors.Is(err, syscall.ESTALE) {
		t.Errorf("write-open through /proc/self/fd of a lower reader: %v, want ESTALE", err)
	}
	if got := readMerged(t, p); got != "lower data" {
		t.Errorf("after the refused open the file reads %q", got)
	}
	must(t, writeAtPath(p, os.O_WRONLY, "UPPER"))
	if _, err := os.OpenFile(proc, os.O_RDWR, 0); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("write-open through /proc/self/fd after the copy-up: %v, want ESTALE", err)
	}
	r2, err := os.Open(proc)
	if err != nil {
		t.Fatalf("read-open through /proc/self/fd after the copy-up: %v", err)
	}
	defer r2.Close()
	if got := readAt(t, r2); got != "lower data" {
		t.Errorf("reopened reader reads %q, want the lower copy", got)
	}
	if got := readMerged(t, p); got != "UPPER data" {
		t.Errorf("new open reads %q", got)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTMmap maps a lower file, then writes it through another fd:
// the mapping keeps the lower data, the lower layer is untouched.
func TestLowerPTMmap(t *testing.T) {
	tu, lower := lowerPT(t, nil, map[string]string{"f": "lower data"})
	p := tu.m("f")
	r, err := os.Open(p)
	must(t, err)
	defer r.Close()
	m, err := unix.Mmap(int(r.Fd()), 0, 10, unix.PROT_READ, unix.MAP_SHARED)
	must(t, err)
	defer unix.Munmap(m)
	if string(m) != "lower data" {
		t.Fatalf("mapping reads %q", m)
	}
	must(t, writeAtPath(p, os.O_RDWR, "UPPER"))
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer w.Close()
	wm, err := unix.Mmap(int(w.Fd()), 0, 10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	must(t, err)
	copy(wm[6:], "MMAP")
	must(t, unix.Msync(wm, unix.MS_SYNC))
	must(t, unix.Munmap(wm))
	if string(m) != "lower data" {
		t.Errorf("mapping of the lower reader reads %q after the copy-up", m)
	}
	if got := readMerged(t, p); got != "UPPER MMAP" {
		t.Errorf("file reads %q", got)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTHardLinks: two names of one lower inode are separate files
// once one is copied up (as overlay without index=on); a reader of either
// keeps the lower copy.
func TestLowerPTHardLinks(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/a", "lower data")
	must(t, os.Link(tu.lowers[0]+"/a", tu.lowers[0]+"/b"))
	lower := testsupport.Fingerprint(t, tu.lowers[0])
	tu.mount(t, nil)
	ra, err := os.Open(tu.m("a"))
	must(t, err)
	defer ra.Close()
	rb, err := os.Open(tu.m("b"))
	must(t, err)
	defer rb.Close()
	must(t, writeAtPath(tu.m("a"), os.O_WRONLY, "AAAAA"))
	if got := readMerged(t, tu.m("b")); got != "lower data" {
		t.Errorf("b reads %q after writing a", got)
	}
	must(t, writeAtPath(tu.m("b"), os.O_WRONLY, "BBBBB"))
	if a, b := readMerged(t, tu.m("a")), readMerged(t, tu.m("b")); a != "AAAAA data" || b != "BBBBB data" {
		t.Errorf("a %q b %q", a, b)
	}
	if a, b := readAt(t, ra), readAt(t, rb); a != "lower data" || b != "lower data" {
		t.Errorf("readers read a %q b %q", a, b)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTRename renames a lower file while a reader holds it, then
// writes the new name.
func TestLowerPTRename(t *testing.T) {
	tu, lower := lowerPT(t, nil, map[string]string{"f": "lower data"})
	r, err := os.Open(tu.m("f"))
	must(t, err)
	defer r.Close()
	must(t, os.Rename(tu.m("f"), tu.m("g")))
	must(t, writeAtPath(tu.m("g"), os.O_WRONLY, "UPPER"))
	if got := readMerged(t, tu.m("g")); got != "UPPER data" {
		t.Errorf("g reads %q", got)
	}
	if got := readAt(t, r); got != "lower data" {
		t.Errorf("reader reads %q", got)
	}
	if _, err := os.Stat(tu.m("f")); !os.IsNotExist(err) {
		t.Errorf("f after rename: %v", err)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTMetadata changes metadata of a lower file with a reader open
// (a metadata-only copy-up with metacopy, a full one without): no new node
// is needed; a later writer still gets one; fchmod through the old reader
// is refused once the name has moved on.
func TestLowerPTMetadata(t *testing.T) {
	for _, meta := range []bool{true, false} {
		t.Run("metacopy="+strconv.FormatBool(meta), func(t *testing.T) {
			tu, lower := lowerPT(t, func(c *Config) { c.Metacopy = meta }, map[string]string{"f": "lower data"})
			p := tu.m("f")
			r, err := os.Open(p)
			must(t, err)
			defer r.Close()
			must(t, os.Chmod(p, 0o600))
			must(t, r.Chmod(0o640)) // still the name's node: allowed
			st, err := os.Stat(p)
			must(t, err)
			if st.Mode().Perm() != 0o640 {
				t.Errorf("mode %o", st.Mode().Perm())
			}
			r2, err := os.Open(p)
			must(t, err)
			defer r2.Close()
			if got := readAt(t, r2); got != "lower data" {
				t.Errorf("second reader reads %q", got)
			}
			must(t, writeAtPath(p, os.O_WRONLY, "UPPER"))
			if got := readMerged(t, p); got != "UPPER data" {
				t.Errorf("file reads %q", got)
			}
			if got := readAt(t, r); got != "lower data" {
				t.Errorf("reader reads %q", got)
			}
			if _, err := unix.Fgetxattr(int(r.Fd()), "user.absent", nil); !errors.Is(err, unix.ENODATA) {
				t.Errorf("fgetxattr through a reader of the old node: %v, want ENODATA", err)
			}
			if err := r.Chmod(0o644); !errors.Is(err, syscall.ESTALE) {
				t.Errorf("fchmod through a reader of the old node: %v, want ESTALE", err)
			}
			must(t, os.Chmod(p, 0o644))
			checkLower(t, tu, lower)
		})
	}
}

// TestLowerPTOff keeps today's strict behaviour: a reader sees the copy-up.
func TestLowerPTOff(t *testing.T) {
	tu, lower := lowerPT(t, func(c *Config) { c.LowerPassthrough = false }, map[string]string{"f": "lower data"})
	r, err := os.Open(tu.m("f"))
	must(t, err)
	defer r.Close()
	readAt(t, r)
	must(t, writeAtPath(tu.m("f"), os.O_WRONLY, "UPPER"))
	if got := readAt(t, r); got != "UPPER data" {
		t.Errorf("reader reads %q, want the copy-up's data", got)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTLink links a lower file that a reader holds (a copy-up that
// needs no new node), then writes through the new name: both names are
// one upper file, the reader keeps the lower copy.
func TestLowerPTLink(t *testing.T) {
	tu, lower := lowerPT(t, nil, map[string]string{"f": "lower data"})
	r, err := os.Open(tu.m("f"))
	must(t, err)
	defer r.Close()
	must(t, os.Link(tu.m("f"), tu.m("g")))
	must(t, writeAtPath(tu.m("g"), os.O_WRONLY, "UPPER"))
	if f, g := readMerged(t, tu.m("f")), readMerged(t, tu.m("g")); f != "UPPER data" || g != "UPPER data" {
		t.Errorf("f %q g %q", f, g)
	}
	if statIno(t, tu.m("f")) != statIno(t, tu.m("g")) {
		t.Errorf("f and g are not one file")
	}
	if got := readAt(t, r); got != "lower data" {
		t.Errorf("reader reads %q", got)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTRace opens lower files for reading and for writing from many
// goroutines at once: every path open succeeds (a split open is retried by
// the VFS, and a retry never needs another), and the lower layer is never
// written.
func TestLowerPTRace(t *testing.T) {
	files := map[string]string{}
	for i := 0; i < 8; i++ {
		files["d/f"+strconv.Itoa(i)] = "lower data"
	}
	tu, lower := lowerPT(t, nil, files)
	done := make(chan struct{})
	errs := make(chan error, 64)
	worker := func(write bool, seed int) {
		for i := seed; ; i++ {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			p := tu.m("d/f" + strconv.Itoa(i%8))
			if write {
				flags := []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC}[i%3]
				if err := writeAtPath(p, flags, "w"+strconv.Itoa(i)); err != nil {
					errs <- err
					return
				}
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 64)
			f.ReadAt(buf, 0)
			f.Close()
		}
	}
	const workers = 6
	for w := 0; w < workers; w++ {
		go worker(w%3 == 0, w*7)
	}
	timer := time.After(2 * time.Second)
	var failed error
	stop := func() {
		if timer != nil {
			close(done)
			timer = nil
		}
	}
	for n := 0; n < workers; {
		select {
		case <-timer:
			stop()
		case err := <-errs:
			n++
			if err != nil && failed == nil {
				failed = err
				stop()
			}
		}
	}
	if failed != nil {
		t.Errorf("open during concurrent copy-ups: %v", failed)
	}
	checkLower(t, tu, lower)
}

// TestLowerPTUpperRemovedDirectly: after a split, the upper copy is
// removed directly in the upper dir while the old reader is open; the name
// shows the lower file again, on a new node (the old identity stays with
// the reader's node, which refuses writes), and can be written again.
func TestLowerPTUpperRemovedDirectly(t *testing.T) {
	tu, lower := lowerPT(t, func(c *Config) { c.EntryTimeout, c.AttrTimeout = 0, 0 }, map[string]string{"f": "lower data"})
	r, err := os.Open(tu.m("f"))
	must(t, err)
	defer r.Close()
	must(t, writeAtPath(tu.m("f"), os.O_WRONLY, "UPPER"))
	must(t, os.Remove(tu.upper+"/f"))
	if got := readMerged(t, tu.m("f")); got != "lower data" {
		t.Errorf("after the upper copy went: %q", got)
	}
	must(t, writeAtPath(tu.m("f"), os.O_WRONLY, "AGAIN"))
	if got := readMerged(t, tu.m("f")); got != "AGAIN data" {
		t.Errorf("rewritten: %q", got)
	}
	if got := readAt(t, r); got != "lower data" {
		t.Errorf("reader reads %q", got)
	}
	checkLower(t, tu, lower)
}
