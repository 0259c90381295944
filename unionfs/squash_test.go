package unionfs

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestSquashedMode(t *testing.T) {
	const dir, reg = syscall.S_IFDIR, syscall.S_IFREG
	cases := []struct {
		mode, ru, rg, su, sg, want uint32
	}{
		{reg | 0o644, 5, 5, 5, 5, reg | 0o644},     // nothing squashed
		{reg | 0o4755, 5, 5, 5, 5, reg | 0o755},    // setuid never shows
		{reg | 0o644, 0, 0, 1500, 0, reg | 0o444},  // root's file, shown as 1500's
		{reg | 0o600, 0, 0, 1500, 0, reg | 0o000},  // root-only stays root-only
		{reg | 0o640, 0, 42, 1500, 0, reg | 0o000}, // group moved: members unknown
		{reg | 0o640, 1500, 7, 1500, 7, reg | 0o640},
		{dir | 0o1777, 0, 0, 1500, 0, dir | 0o1777},
		{dir | 0o2770, 0, 9, 0, 0, dir | 0o2700},     // squash_to_root: 0 owns, group 9 hidden
		{reg | 0o077, 3, 3, 1500, 3, reg | 0o700},    // 1500 is group or other: 7; ru may be among the rest: 0
		{reg | 0o755, 1500, 1500, 0, 0, reg | 0o555}, // shown as root's: 1500 gets no write
	}
	for _, c := range cases {
		if got := squashedMode(c.mode, c.ru, c.rg, c.su, c.sg); got != c.want {
			t.Errorf("squashedMode(%o, owner %d:%d, shown %d:%d) = %o, want %o", c.mode, c.ru, c.rg, c.su, c.sg, got, c.want)
		}
	}
}

// asUser runs a shell script as uid:gid and returns its output.
func asUser(uid, gid uint32, script string) (string, error) {
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSquashToUIDOnRootMount: on a root mount with allow_other,
// squash_to_uid=1500 shows every file as 1500's, but user 1500 gets no
// more than the real owners and modes give it: no reading a root-only file,
// no chmod u+s or chown of a root binary (which left a setuid-root copy in
// the upper), no writing into root's dirs, no deleting another user's file
// in a sticky dir; its own files stay its own, and a setuid bit it sets
// does not survive.
func TestSquashToUIDOnRootMount(t *testing.T) {
	tu := newLayers(t, 1)
	lo := tu.lowers[0]
	writeFile(t, lo+"/secret", "s")
	must(t, os.Chmod(lo+"/secret", 0o600))
	id, err := os.ReadFile("/usr/bin/id")
	must(t, err)
	must(t, os.WriteFile(lo+"/bin", id, 0o755))
	writeFile(t, lo+"/etc/passwd", "root:x:0:0")
	writeFile(t, lo+"/own", "mine")
	must(t, os.Chown(lo+"/own", 1500, 1500))
	mkdirAll(t, lo+"/tmp")
	must(t, syscall.Chmod(lo+"/tmp", 0o1777))
	writeFile(t, lo+"/tmp/other", "o")
	must(t, os.Chown(lo+"/tmp/other", 1501, 1501))
	writeFile(t, lo+"/tmp/mine", "m")
	must(t, os.Chown(lo+"/tmp/mine", 1500, 1500))
	must(t, os.Chmod(lo, 0o755))
	openToAll(t, tu.mnt)
	uid := uint32(1500)
	tu.mount(t, func(c *Config) { c.AllowOther, c.SquashUID = true, &uid })

	denied := []struct{ what, script, say string }{
		{"read a root-only file", "cat " + tu.m("secret"), "Permission denied"},
		{"chmod u+s a root binary", "chmod u+s " + tu.m("bin"), "Operation not permitted"},
		{"chmod a root file", "chmod 666 " + tu.m("etc/passwd"), "Operation not permitted"},
		{"chown a root file to itself", "chown 1500 " + tu.m("secret"), "Operation not permitted"},
		{"chgrp a root file", "chgrp 1500 " + tu.m("bin"), "Operation not permitted"},
		{"set a root file's times", "touch -c -d 2001-01-01 " + tu.m("bin"), "Operation not permitted"},
		{"write a root file", "echo x >> " + tu.m("etc/passwd"), "Permission denied"},
		{"create in a root dir", "touch " + tu.m("etc/new"), "Permission denied"},
		{"delete from a root dir", "rm -f " + tu.m("etc/passwd"), "Permission denied"},
		{"delete another's file in a sticky dir", "rm -f " + tu.m("tmp/other"), "Operation not permitted"},
		{"hard-link a root-only file", "ln " + tu.m("secret") + " " + tu.m("tmp/s"), "Operation not permitted"},
		{"rename another's file out of a sticky dir", "mv " + tu.m("tmp/other") + " " + tu.m("tmp/stolen"), "Operation not permitted"},
		{"exchange another's file in a sticky dir", "touch " + tu.m("tmp/x") + " && " + exchangeScript(tu.m("tmp/x"), tu.m("tmp/other")), "Operation not permitted"},
	}
	for _, d := range denied {
		if out, err := asUser(1500, 1500, d.script); err == nil || !strings.Contains(out, d.say) {
			t.Errorf("user 1500 could %s (%s): %q %v, want %q", d.what, d.script, out, err, d.say)
		}
	}
	allowed := []struct{ what, script string }{
		{"read its own file", "cat " + tu.m("own")},
		{"write its own file", "echo more >> " + tu.m("own")},
		{"chmod its own file", "chmod 4755 " + tu.m("own")},
		{"set its own file's times", "touch -d 2001-01-01 " + tu.m("own")},
		{"read a world-readable root file", "cat " + tu.m("etc/passwd")},
		{"run a root binary", tu.m("bin")},
		{"create in a sticky dir", "touch " + tu.m("tmp/new")},
		{"delete its own file in a sticky dir", "rm " + tu.m("tmp/mine")},
	}
	for _, a := range allowed {
		if out, err := asUser(1500, 1500, a.script); err != nil {
			t.Errorf("user 1500 could not %s (%s): %q %v", a.what, a.script, out, err)
		}
	}
	var st syscall.Stat_t
	must(t, syscall.Lstat(tu.upper+"/own", &st))
	if st.Mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 || st.Mode&0o777 != 0o755 || st.Uid != 1500 {
		t.Errorf("own after chmod 4755 by its owner: mode %o uid %d, want 0755 without setuid, uid 1500", st.Mode, st.Uid)
	}
	for _, p := range []string{"bin", "secret", "etc/passwd", "tmp/other"} {
		if err := syscall.Lstat(tu.upper+"/"+p, &st); err == nil && (st.Uid != 0 && p != "tmp/other" || st.Mode&syscall.S_ISUID != 0) {
			t.Errorf("upper/%s: uid %d mode %o: a denied change reached the upper", p, st.Uid, st.Mode)
		}
	}
	if _, err := os.Lstat(tu.lowers[0] + "/tmp/other"); err != nil {
		t.Errorf("lower changed: %v", err)
	}
	if _, err := os.Lstat(tu.m("tmp/other")); err != nil {
		t.Errorf("tmp/other gone from the union: %v", err)
	}
	// Root keeps every right.
	if out, err := asUser(0, 0, "cat "+tu.m("secret")+" && chmod 640 "+tu.m("secret")); err != nil {
		t.Errorf("root on a squashed mount: %q %v", out, err)
	}
}

// TestSquashToRootHidesSetuid: squash_to_root shows a user's setuid binary
// as root's; on a suid mount it must not run as root.
func TestSquashToRootHidesSetuid(t *testing.T) {
	tu := newLayers(t, 1)
	id, err := os.ReadFile("/usr/bin/id")
	must(t, err)
	must(t, os.WriteFile(tu.lowers[0]+"/id", id, 0o755))
	must(t, os.Chown(tu.lowers[0]+"/id", 1500, 1500))
	must(t, syscall.Chmod(tu.lowers[0]+"/id", 0o4755))
	must(t, os.Chmod(tu.lowers[0], 0o755))
	openToAll(t, tu.mnt)
	zero := uint32(0)
	tu.mount(t, func(c *Config) { c.AllowOther, c.Suid, c.SquashUID, c.SquashGID = true, true, &zero, &zero })
	out, err := asUser(1501, 1501, tu.m("id")+" -u")
	if err != nil {
		t.Fatalf("run: %q %v", out, err)
	}
	if out != "1501" {
		t.Errorf("user 1501 ran 1500's setuid binary shown as root's and got euid %s, want 1501", out)
	}
	fi, err := os.Stat(tu.m("id"))
	must(t, err)
	if fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("mode %v shows setuid on a squashed mount", fi.Mode())
	}
}

// exchangeScript swaps two names with renameat2(RENAME_EXCHANGE); coreutils
// has no command for it.
func exchangeScript(a, b string) string {
	return `python3 -c 'import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) != 0: sys.exit(os.strerror(ctypes.get_errno()))' ` + a + " " + b
}

// TestSquashToGIDOnRootMount: squash_to_gid=2000 shows every file in group
// 2000; a member of 2000 must not get the group bits of files whose real
// group it is not in, nor chgrp them.
func TestSquashToGIDOnRootMount(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/gsecret", "g")
	must(t, os.Chmod(tu.lowers[0]+"/gsecret", 0o660))
	writeFile(t, tu.lowers[0]+"/mine", "m")
	must(t, os.Chown(tu.lowers[0]+"/mine", 1500, 2000))
	must(t, os.Chmod(tu.lowers[0], 0o755))
	openToAll(t, tu.mnt)
	gid := uint32(2000)
	tu.mount(t, func(c *Config) { c.AllowOther, c.SquashGID = true, &gid })
	run := func(script string) (string, error) {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1500, Gid: 1500, Groups: []uint32{2000}}}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for _, script := range []string{"cat " + tu.m("gsecret"), "echo x >> " + tu.m("gsecret")} {
		if out, err := run(script); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("member of the shown group 2000: %s: %q %v, want Permission denied (real group is 0)", script, out, err)
		}
	}
	if out, err := run("cat " + tu.m("mine") + " && chmod 640 " + tu.m("mine")); err != nil {
		t.Errorf("owner of a file in its real group: %q %v", out, err)
	}
	if got, _ := os.ReadFile(tu.lowers[0] + "/gsecret"); string(got) != "g" {
		t.Errorf("lower changed: %q", got)
	}
}
