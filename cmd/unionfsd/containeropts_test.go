package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/unionfs"
)

// Tests of the fuse-overlayfs options containers-storage passes to its
// mount_program (uidmapping=, squash_to_*, static_nlink) and of the whiteout
// format of the upper, through the real command and a real mount.

// TestIDMapBadInput checks that a map that cannot work is one error line
// naming the option and the cause, and that nothing is mounted or created.
func TestIDMapBadInput(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name  string
		code  int
		opt   string   // added to lowerdir=,upperdir=,workdir=
		wrap  []string // run unionfsd through this
		names string   // what the error must name
		cause string
	}{
		{"unknown format", 2, "uidmapping=0:100000", nil, "uidmapping=0:100000", "want ID:MAPPED:COUNT"},
		{"not numbers", 2, "gidmapping=root:100000:1", nil, "gidmapping=root:100000:1", `"root" is not a number`},
		{"zero size", 1, "uidmapping=0:100000:0", nil, "uidmapping=0:100000:0", "has size 0"},
		{"overlapping stored ids", 1, "uidmapping=0:100000:10:5:200000:10", nil,
			"uidmapping=0:100000:10:5:200000:10", "stored ids 5-9 are in both"},
		{"overlapping shown ids", 1, "gidmapping=0:100000:10:20:100005:1", nil,
			"gidmapping=0:100000:10:20:100005:1", "shown ids 100005-100005 are in both"},
		{"past the id space", 1, "uidmapping=0:4294967000:1000", nil, "uidmapping=0:4294967000:1000", "past the highest id"},
		// A user namespace that maps only root: ids 100000... do not exist there.
		{"outside the user namespace", 1, "uidmapping=0:100000:1", []string{"unshare", "--user", "--map-root-user"},
			"uidmapping=0:100000:1", "shown id 100000 (range 0:100000:1) is not mapped in this user namespace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.wrap != nil {
				if _, err := exec.LookPath(c.wrap[0]); err != nil {
					t.Skip("unshare (util-linux) missing")
				}
			}
			b := newLayout(t)
			opts := "lowerdir=" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work + "," + c.opt
			r := runCLI(t, runOpts{wrap: c.wrap}, "-o", opts, b.mnt)
			assertOneErrorLine(t, r, c.code, c.names, c.cause)
			assertNothingLeft(t, b)
			if _, err := os.Stat(b.work); err == nil {
				t.Errorf("failed run created the workdir %s", b.work)
			}
		})
	}
}

// mountWith mounts l2 over l1 with upper and workdir, plus opts, and
// returns the daemon's pid; cleanup unmounts the way containers-storage
// does (fusermount3 -u) and checks the daemon ends.
func mountWith(t *testing.T, b *layout, opts ...string) int {
	t.Helper()
	args := []string{"-o", "lowerdir=" + b.l2 + ":" + b.l1 + ",upperdir=" + b.up + ",workdir=" + b.work}
	args = append(append(args, opts...), b.mnt)
	pid := mountBackground(t, b, args...)
	t.Cleanup(func() { unmountLikeStorage(t, b, pid) })
	return pid
}

func unmountLikeStorage(t *testing.T, b *layout, pid int) {
	if _, ok := mountAt(b.mnt); !ok {
		return
	}
	err := exec.Command("fusermount3", "-u", b.mnt).Run()
	if err != nil {
		unix.Unmount(b.mnt, 0)
	}
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("daemon %d still running 5s after unmount", pid)
	}
	assertNothingLeft(t, b)
}

// owner returns the uid and gid lstat reports for p.
func owner(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

func chown(t *testing.T, p string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// TestIDMappedMount: a layer file stored as ID+k shows as MAPPED+k; a chown
// through the mount to MAPPED+k stores ID+k; ids outside the map show as
// the overflow id. This is fuse-overlayfs's direction, which podman relies
// on: layers keep the image's ids, the mount shows the container's host ids.
func TestIDMappedMount(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	chown(t, b.l1+"/a", 0, 0)
	chown(t, b.l1+"/dir/x", 5, 7)
	chown(t, b.l2+"/b", 50, 50) // outside the maps
	mountWith(t, b, "-o", "uidmapping=0:100000:1:1:200001:9,gidmapping=0:300000:10")

	check := func(p string, wantUID, wantGID uint32) {
		t.Helper()
		if uid, gid := owner(t, p); uid != wantUID || gid != wantGID {
			t.Errorf("%s shows %d:%d, want %d:%d", p, uid, gid, wantUID, wantGID)
		}
	}
	check(b.mnt+"/a", 100000, 300000)
	check(b.mnt+"/dir/x", 200005, 300007)
	check(b.mnt+"/b", 65534, 65534)

	if err := os.Lchown(b.mnt+"/a", 200003, 300004); err != nil {
		t.Fatalf("chown through the mapped mount: %v", err)
	}
	check(b.mnt+"/a", 200003, 300004)
	if uid, gid := owner(t, b.up+"/a"); uid != 3 || gid != 4 {
		t.Errorf("upper/a stored as %d:%d after chown to 200003:300004, want 3:4", uid, gid)
	}
	if err := os.Lchown(b.mnt+"/a", 5000, 5000); !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.EPERM) {
		t.Errorf("chown to an id outside the map: %v, want EINVAL or EPERM", err)
	}
}

// TestSquashMount: squash_to_root shows every file as 0:0, squash_to_uid
// and squash_to_gid win over it.
func TestSquashMount(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		opt      string
		uid, gid uint32
	}{
		{"squash_to_root", 0, 0},
		{"squash_to_root,squash_to_uid=7,squash_to_gid=8", 7, 8},
	} {
		t.Run(c.opt, func(t *testing.T) {
			b := newLayout(t)
			chown(t, b.l1+"/a", 1000, 1001)
			chown(t, b.l1+"/dir", 1002, 1003)
			mountWith(t, b, "-o", c.opt)
			for _, p := range []string{"a", "dir", "dir/x"} {
				if uid, gid := owner(t, filepath.Join(b.mnt, p)); uid != c.uid || gid != c.gid {
					t.Errorf("%s shows %d:%d, want %d:%d", p, uid, gid, c.uid, c.gid)
				}
			}
		})
	}
}

// TestStaticNlinkMount: every directory reports one link.
func TestStaticNlinkMount(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	for _, d := range []string{"dir/s1", "dir/s2"} {
		if err := os.MkdirAll(filepath.Join(b.l1, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mountWith(t, b, "-o", "static_nlink")
	for _, p := range []string{"", "dir", "dir/s1"} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(b.mnt, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Nlink != 1 {
			t.Errorf("/%s: nlink %d, want 1 with static_nlink", p, st.Nlink)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(b.mnt+"/a", &st); err != nil || st.Nlink != 1 {
		t.Errorf("file a: nlink %d (%v), want its real count 1", st.Nlink, err)
	}
}

// TestWhiteoutFormats: the default upper holds OCI whiteouts; with
// --whiteout-format overlay (or -o whiteout_format=overlay) a deletion is a
// 0/0 character device and a replaced directory carries
// trusted.overlay.opaque=y, as kernel overlay writes them.
func TestWhiteoutFormats(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name string
		opts []string
		oci  bool
	}{
		{"default", nil, true},
		{"flag", []string{"--whiteout-format", "overlay"}, false},
		{"option", []string{"-o", "whiteout_format=overlay"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			mountWith(t, b, c.opts...)
			if err := os.Remove(b.mnt + "/a"); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(b.mnt + "/dir"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(b.mnt+"/dir", 0o755); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(b.mnt + "/dir"); len(entries) != 0 {
				t.Errorf("recreated dir shows %d old entries", len(entries))
			}
			if _, err := os.Lstat(b.mnt + "/a"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("deleted a still shows: %v", err)
			}
			if c.oci {
				assertOCIWhiteouts(t, b.up)
			} else {
				assertOverlayWhiteouts(t, b.up)
			}
		})
	}
}

func assertOCIWhiteouts(t *testing.T, up string) {
	t.Helper()
	if st, err := os.Lstat(up + "/.wh.a"); err != nil || !st.Mode().IsRegular() {
		t.Errorf("upper/.wh.a: %v, want a regular whiteout file", err)
	}
	if _, err := os.Lstat(up + "/dir/.wh..wh..opq"); err != nil {
		t.Errorf("upper/dir/.wh..wh..opq: %v", err)
	}
}

func assertOverlayWhiteouts(t *testing.T, up string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(up+"/a", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upper/a: %v, mode %o rdev %d; want a 0/0 character device", err, st.Mode, st.Rdev)
	}
	if names, _ := filepath.Glob(up + "/.wh.*"); len(names) != 0 {
		t.Errorf("overlay format left OCI whiteouts: %q", names)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(up+"/dir", "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("upper/dir trusted.overlay.opaque = %q, %v; want \"y\"", buf[:max(n, 0)], err)
	}
	if entries, _ := os.ReadDir(up + "/dir"); len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("upper/dir holds %s, want it empty (the xattr marks it opaque)", strings.Join(names, " "))
	}
}

// TestParseContainerOptions covers the fuse-overlayfs options that
// containers-storage passes to a mount_program, and the whiteout format.
func TestParseContainerOptions(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	def := unionfs.DefaultConfig()
	cases := []struct {
		name  string
		args  []string
		check func(c unionfs.Config) bool
	}{
		{"defaults", nil, func(c unionfs.Config) bool {
			return c.UIDMap == nil && c.GIDMap == nil && c.SquashUID == nil && c.SquashGID == nil &&
				!c.StaticNlink && c.WhiteoutFormat == unionfs.WhiteoutOCI && !c.Metacopy && c.Fsync == def.Fsync
		}},
		// ID:MAPPED:COUNT: ID is stored in the layers (HostID), MAPPED is shown (ContainerID).
		{"uidmapping and gidmapping", []string{"-o", "uidmapping=0:100000:1:1:200000:65535,gidmapping=0:300000:10"},
			func(c unionfs.Config) bool {
				return reflect.DeepEqual(c.UIDMap, []unionfs.IDMap{
					{HostID: 0, ContainerID: 100000, Size: 1}, {HostID: 1, ContainerID: 200000, Size: 65535}}) &&
					reflect.DeepEqual(c.GIDMap, []unionfs.IDMap{{HostID: 0, ContainerID: 300000, Size: 10}})
			}},
		// containers-storage's spelling, with a colon in front.
		{"leading colon", []string{"-o", "uidmapping=:0:1:65536,gidmapping=:0:2:10:10:20:5"}, func(c unionfs.Config) bool {
			return reflect.DeepEqual(c.UIDMap, []unionfs.IDMap{{HostID: 0, ContainerID: 1, Size: 65536}}) &&
				reflect.DeepEqual(c.GIDMap, []unionfs.IDMap{{HostID: 0, ContainerID: 2, Size: 10}, {HostID: 10, ContainerID: 20, Size: 5}})
		}},
		{"squash_to_root", []string{"-o", "squash_to_root"}, func(c unionfs.Config) bool {
			return reflect.DeepEqual(c.SquashUID, u32(0)) && reflect.DeepEqual(c.SquashGID, u32(0))
		}},
		{"squash_to_uid beats squash_to_root", []string{"-o", "squash_to_uid=1000,squash_to_root"},
			func(c unionfs.Config) bool {
				return reflect.DeepEqual(c.SquashUID, u32(1000)) && reflect.DeepEqual(c.SquashGID, u32(0))
			}},
		{"squash_to_gid alone", []string{"-o", "squash_to_gid=5"}, func(c unionfs.Config) bool {
			return c.SquashUID == nil && reflect.DeepEqual(c.SquashGID, u32(5))
		}},
		{"static_nlink", []string{"-o", "static_nlink"}, func(c unionfs.Config) bool { return c.StaticNlink }},
		{"metacopy=on", []string{"-o", "metacopy=on"}, func(c unionfs.Config) bool { return c.Metacopy }},
		{"metacopy=off", []string{"-o", "metacopy=on,metacopy=off"}, func(c unionfs.Config) bool { return !c.Metacopy }},
		{"whiteout_format=overlay", []string{"-o", "whiteout_format=overlay"}, func(c unionfs.Config) bool {
			return c.WhiteoutFormat == unionfs.WhiteoutOverlay
		}},
		{"--whiteout-format", []string{"--whiteout-format", "overlay"}, func(c unionfs.Config) bool {
			return c.WhiteoutFormat == unionfs.WhiteoutOverlay
		}},
		{"flag beats -o", []string{"-o", "whiteout_format=overlay", "--whiteout-format=oci"}, func(c unionfs.Config) bool {
			return c.WhiteoutFormat == unionfs.WhiteoutOCI
		}},
		{"no-ops", []string{"-o", "noacl,threaded=1,xattr_permissions=2,fsync=0"}, func(c unionfs.Config) bool {
			return !c.Fsync && c.UIDMap == nil && c.SquashUID == nil
		}},
		// What podman 4 passed in this repository's tests, SELinux label
		// and empty option included.
		{"containers-storage command line", []string{"-o", "lowerdir=/s/l/A:/s/l/B,upperdir=/s/x/diff," +
			"workdir=/s/x/work,,volatile,uidmapping=:0:1:65536,gidmapping=:0:1:65536,xattr_permissions=2," +
			`context="system_u:object_r:container_file_t:s0:c1,c2"`}, func(c unionfs.Config) bool {
			return reflect.DeepEqual(c.Lowers, []string{"/s/l/A", "/s/l/B"}) && c.Upper == "/s/x/diff" &&
				c.Work == "/s/x/work" && !c.Fsync && len(c.UIDMap) == 1 && len(c.GIDMap) == 1
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{}, c.args...), "/up:/lo", "/mnt")
			if strings.Contains(strings.Join(c.args, " "), "lowerdir=") {
				args = append(append([]string{}, c.args...), "/s/x/merged")
			}
			o, err := parseArgs(args, 0)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", args, err)
			}
			if !c.check(o.cfg) {
				t.Fatalf("parseArgs(%q) gave %+v", args, o.cfg)
			}
		})
	}
}
