package unionfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// listAs lists the xattr names of path with getfattr as uid (0: root).
func listAs(t *testing.T, uid uint32, path string) []string {
	t.Helper()
	cmd := exec.Command("getfattr", "--absolute-names", "-m", "-", path)
	cmd.Dir = "/"
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("getfattr %s as %d: %v", path, uid, err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "# file:") {
			names = append(names, l)
		}
	}
	sort.Strings(names)
	return names
}

// Only CAP_SYS_ADMIN sees trusted.* names: an unprivileged caller's
// listxattr through the mount must match kernel overlay's, which applies
// the kernel's rule. The daemon (root) used to list them to everyone.
func TestListxattrTrustedHidden(t *testing.T) {
	if _, err := exec.LookPath("getfattr"); err != nil {
		t.Skip("no getfattr (attr package)")
	}
	tu := newLayers(t, 1)
	f := filepath.Join(tu.lowers[0], "f")
	writeFile(t, f, "x")
	d := filepath.Join(tu.lowers[0], "d")
	mkdirAll(t, d)
	for _, p := range []string{f, d} {
		must(t, unix.Lsetxattr(p, "trusted.secret", []byte("1"), 0))
		must(t, unix.Lsetxattr(p, "user.plain", []byte("1"), 0))
	}
	must(t, os.Chmod(tu.lowers[0], 0o755))
	openToAll(t, tu.mnt)
	tu.mount(t, func(c *Config) { c.AllowOther = true })

	ovl := filepath.Join(filepath.Dir(tu.mnt), "ovl")
	ovlUpper, ovlWork := filepath.Join(filepath.Dir(tu.mnt), "ovl-upper"), filepath.Join(filepath.Dir(tu.mnt), "ovl-work")
	mkdirAll(t, ovl, ovlUpper, ovlWork)
	if err := unix.Mount("overlay", ovl, "overlay", 0, "lowerdir="+tu.lowers[0]+",upperdir="+ovlUpper+",workdir="+ovlWork); err != nil {
		t.Skipf("kernel overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ovl, unix.MNT_DETACH) })
	must(t, os.Chmod(ovl, 0o755))

	for _, rel := range []string{"f", "d"} {
		for _, uid := range []uint32{0, 65534} {
			got, want := listAs(t, uid, filepath.Join(tu.mnt, rel)), listAs(t, uid, filepath.Join(ovl, rel))
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s as uid %d: unionfsd lists %q, overlay %q", rel, uid, got, want)
			}
			hasTrusted := strings.Contains(strings.Join(got, ","), "trusted.secret")
			if hasTrusted != (uid == 0) {
				t.Errorf("%s as uid %d: trusted.secret listed: %v", rel, uid, hasTrusted)
			}
		}
	}
}
