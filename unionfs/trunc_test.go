package unionfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// smallUpper mounts a tmpfs of size bytes and makes upper and work dirs in
// it; unmounted at cleanup.
func smallUpper(t *testing.T, dir string, size int) (upper, work string) {
	t.Helper()
	mkdirAll(t, dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	upper, work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	mkdirAll(t, upper, work)
	return upper, work
}

// writeBig writes n MiB of non-zero data (no holes to skip) to path.
func writeBig(t *testing.T, path string, mib int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for i := 0; i < mib; i++ {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	must(t, f.Chown(7, 8))
}

// truncResult is what a truncation left: the merged file and its upper copy.
type truncResult struct {
	mergedSize, upperSize int64
	mode, uid, gid        uint32
}

func statTrunc(t *testing.T, merged, upper string) truncResult {
	t.Helper()
	var m, u syscall.Stat_t
	must(t, syscall.Lstat(merged, &m))
	must(t, syscall.Lstat(upper, &u))
	if m.Mode != u.Mode || m.Uid != u.Uid || m.Gid != u.Gid {
		t.Errorf("%s: merged mode/owner %o %d:%d, upper %o %d:%d", merged, m.Mode, m.Uid, m.Gid, u.Mode, u.Uid, u.Gid)
	}
	return truncResult{m.Size, u.Size, m.Mode, m.Uid, m.Gid}
}

// An open with O_TRUNC of a lower file bigger than the space left in the
// upper works: nothing of the data is copied. Kernel overlay (the oracle)
// does the same, and both leave the same file. truncate(2) to 0 copies no
// data either (overlay copies the whole file first there and fails).
func TestTruncateCopiesNoData(t *testing.T) {
	testsupport.RequireFUSE(t)
	base := t.TempDir()
	lower := filepath.Join(base, "lower")
	mkdirAll(t, lower)
	writeBig(t, filepath.Join(lower, "big"), 96)
	must(t, os.Link(filepath.Join(lower, "big"), filepath.Join(lower, "big2")))

	results := map[string]truncResult{}
	for _, kind := range []string{"overlay", "unionfsd"} {
		upper, work := smallUpper(t, filepath.Join(base, kind+"-space"), 32<<20)
		mnt := filepath.Join(base, kind)
		mkdirAll(t, mnt)
		if kind == "overlay" {
			opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off", lower, upper, work)
			if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
				t.Skipf("kernel overlay: %v", err)
			}
			t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		} else {
			tu := &testUnion{lowers: []string{lower}, upper: upper, work: work, mnt: mnt}
			tu.mount(t, nil)
		}
		// The shell's ": > big": open(O_WRONLY|O_CREAT|O_TRUNC).
		if out, err := exec.Command("sh", "-c", ": > "+filepath.Join(mnt, "big")).CombinedOutput(); err != nil {
			t.Fatalf("%s: : > big: %v %s", kind, err, out)
		}
		results[kind] = statTrunc(t, filepath.Join(mnt, "big"), filepath.Join(upper, "big"))
		if kind == "unionfsd" {
			if err := syscall.Truncate(filepath.Join(mnt, "big2"), 0); err != nil {
				t.Fatalf("truncate(2) to 0 of a 96 MiB lower file with 32 MiB free: %v", err)
			}
			if r := statTrunc(t, filepath.Join(mnt, "big2"), filepath.Join(upper, "big2")); r != results[kind] {
				t.Errorf("truncate(2) left %+v, O_TRUNC %+v", r, results[kind])
			}
		}
	}
	if results["overlay"] != results["unionfsd"] {
		t.Errorf("after : > big\n overlay:  %+v\n unionfsd: %+v", results["overlay"], results["unionfsd"])
	}
	if r := results["unionfsd"]; r.mergedSize != 0 || r.upperSize != 0 || r.uid != 7 || r.gid != 8 || r.mode&0o7777 != 0o640 {
		t.Errorf("unionfsd: %+v, want an empty 0640 file owned by 7:8", r)
	}
}
