package faults

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/tests/difftest"
)

// dmMissing reports what this host lacks for device-mapper tests, or "".
func dmMissing() string {
	if _, err := exec.LookPath("dmsetup"); err != nil {
		return "dmsetup is not installed (apt-get install dmsetup)"
	}
	devs, err := os.ReadFile("/proc/devices")
	if err != nil || !bytes.Contains(devs, []byte(" device-mapper\n")) {
		return "the kernel has no device-mapper (CONFIG_BLK_DEV_DM is off or dm_mod is not loaded: no device-mapper in /proc/devices)"
	}
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		return "/dev/mapper/control is missing (dmsetup mknodes makes it)"
	}
	return ""
}

// TestEIODeviceMapper puts the upper on ext4 over a device-mapper linear
// target, switches the table to the error target in the middle of the
// test and back: a copy-up (which fsyncs the copy, so the failure cannot
// hide in the page cache) must fail with EIO without hanging or killing
// the daemon and leave the lower content visible; with the linear table
// back it succeeds. TestEIOBrokenUpper covers the same ground through a
// FUSE file system on hosts without device-mapper.
func TestEIODeviceMapper(t *testing.T) {
	testsupport.RequireFUSE(t)
	if why := dmMissing(); why != "" {
		t.Skip("device-mapper EIO test: " + why)
	}
	const size = 32 << 20
	name, dev := dmLinear(t, size)
	run(t, "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", dev)
	fsRoot := filepath.Join(t.TempDir(), "ext4")
	if err := os.Mkdir(fsRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, fsRoot, "ext4", 0, "errors=continue"); err != nil {
		t.Fatalf("mount %s: %v", dev, err)
	}
	t.Cleanup(func() {
		dmTable(t, name, fmt.Sprintf("0 %d linear %s 0", size/512, dmBacking[name]))
		if err := difftest.Unmount(fsRoot); err != nil {
			t.Errorf("unmount ext4 on dm: %v", err)
		}
	})
	lower := eioLower(t)
	u := mountUnion(t, lower, filepath.Join(fsRoot, "upper"), filepath.Join(fsRoot, "work"))
	mergedBefore := tree(t, u.mnt)

	dmTable(t, name, fmt.Sprintf("0 %d error", size/512))
	err := timed(20*time.Second, func() error { return appendTo(u.m("dir/big"), "tail") })
	assertErrno(t, "copy-up onto a device that fails every I/O", err, syscall.EIO)
	assertSameTree(t, "merged view after the failed copy-up", tree(t, u.mnt), mergedBefore)
	u.assertServing(t)

	dmTable(t, name, fmt.Sprintf("0 %d linear %s 0", size/512, dmBacking[name]))
	within(t, 20*time.Second, "copy-up once the device works", func() error { return appendTo(u.m("dir/big"), "tail") })
	big := append(randomBytes(1, 1<<20), "tail"...)
	if got := readFile(t, u.m("dir/big")); !bytes.Equal(got, big) {
		t.Errorf("dir/big after the append: %d bytes, want %d", len(got), len(big))
	}
	assertNoStaging(t, u.work)
}

// dmBacking maps a dm device name to the loop device under it.
var dmBacking = map[string]string{}

// dmLinear makes a loop device over a sparse file of size bytes and a dm
// linear device over it; cleanup removes both. It returns the dm name and
// the device node.
func dmLinear(t *testing.T, size int64) (name, dev string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "dm.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	loop := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	name = fmt.Sprintf("unionfsd-faults-%d", os.Getpid())
	run(t, "dmsetup", "create", name, "--table", fmt.Sprintf("0 %d linear %s 0", size/512, loop))
	dmBacking[name] = loop
	t.Cleanup(func() {
		if out, err := exec.Command("dmsetup", "remove", "--retry", name).CombinedOutput(); err != nil {
			t.Errorf("dmsetup remove %s: %v %s", name, err, out)
		}
	})
	run(t, "dmsetup", "mknodes", name) // no udev in a container
	return name, "/dev/mapper/" + name
}

// dmTable swaps the table of the dm device name.
func dmTable(t *testing.T, name, table string) {
	t.Helper()
	run(t, "dmsetup", "suspend", "--noflush", "--nolockfs", name)
	run(t, "dmsetup", "load", name, "--table", table)
	run(t, "dmsetup", "resume", name)
}
