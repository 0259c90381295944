package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// peerCase is one command line with a peer's option and what it must give:
// check passes on the parsed options, or the usage error says refused.
type peerCase struct {
	args    []string // before the default "/u=RW:/l=RO /mnt" unless pos is set
	pos     []string // positional arguments instead of the default
	euid    int
	check   func(o *options) bool
	refused string
}

// same reports that o is what the plain branch list gives: the option
// changed nothing.
func same(o *options) bool {
	return o.cfg.Upper == "/u" && reflect.DeepEqual(o.cfg.Lowers, []string{"/l"}) &&
		o.mountpoint == "/mnt" && o.peer == peerOptions{} && o.cfg.AllowOther && o.trace.dest == ""
}

// peerCases cover every option of README's peer table.
var peerCases = map[string]peerCase{
	// unionfs-fuse
	"cow":             {check: same},
	"use_ino":         {check: same},
	"statfs_omit_ro":  {check: same},
	"preserve_branch": {check: same},
	"noinitgroups":    {check: same},
	"hide_meta_files": {check: func(o *options) bool { return o.peer.hideMetaFiles }},
	"hide_meta_dir":   {check: func(o *options) bool { return o.peer.hideMetaFiles }},
	"max_files=32768": {check: func(o *options) bool { return o.peer.maxFiles == 32768 }},
	"max_files=10":    {refused: "-o max_files=10: want a number of open files, at least 64"},
	"max_files=lots":  {refused: "-o max_files=lots: want a number"},
	"chroot=/srv/live": {check: func(o *options) bool {
		return o.peer.chroot == "/srv/live" && o.cfg.Upper == "/u" // resolved at mount time
	}},
	"dirs=/a=RW:/b=RO": {pos: []string{"none", "/mnt"}, check: func(o *options) bool {
		return o.cfg.Upper == "/a" && reflect.DeepEqual(o.cfg.Lowers, []string{"/b"}) &&
			o.mountpoint == "/mnt" && o.cfg.FsName == "none"
	}},
	"dirs=/a:/b": {pos: []string{"/mnt"}, check: func(o *options) bool {
		return o.cfg.Upper == "/a" && reflect.DeepEqual(o.cfg.Lowers, []string{"/b"}) && o.mountpoint == "/mnt"
	}},
	"debug_file=/tmp/u.log": {check: func(o *options) bool { return o.trace.dest == "/tmp/u.log" && !o.foreground }},
	"relaxed_permissions":   {refused: "-o relaxed_permissions: not supported: unionfsd always lets the kernel check permissions"},
	"direct_io":             {refused: "-o direct_io: not supported"},
	"lbwrite":               {refused: "-o lbwrite: not supported: balances writes over several =RW branches"},

	// libfuse
	"default_permissions": {check: same},
	"nonempty":            {check: same},
	"kernel_cache":        {check: same},
	"allow_root":          {check: func(o *options) bool { return !o.cfg.AllowOther && o.peer.allowRoot }},
	"suid":                {check: func(o *options) bool { return o.cfg.Suid && !o.cfg.Dev }},
	"dev":                 {check: func(o *options) bool { return o.cfg.Dev && !o.cfg.Suid }},
	"fsname=mine":         {check: func(o *options) bool { return o.cfg.FsName == "mine" }},
	"subtype=unionfsd":    {check: same},
	"subtype=sshfs":       {refused: "-o subtype=sshfs: not supported: the type is always fuse.unionfsd"},
	"auto_unmount":        {check: func(o *options) bool { return o.peer.autoUnmount }},
	"max_read=131072":     {refused: "-o max_read=131072: not supported"},

	// fuse-overlayfs
	"fast_ino=1":            {check: same},
	"writeback=0":           {check: same},
	"writeback=1":           {check: same},
	"noxattrs=0":            {check: same},
	"noxattrs=1":            {refused: "-o noxattrs=1: not supported: unionfsd always serves xattrs"},
	"plugins=/usr/lib":      {refused: "-o plugins=/usr/lib: not supported: unionfsd loads no layer plugins"},
	"squash_to_root":        {check: func(o *options) bool { return *o.cfg.SquashUID == 0 && *o.cfg.SquashGID == 0 }},
	"squash_to_uid=7":       {check: func(o *options) bool { return *o.cfg.SquashUID == 7 && o.cfg.SquashGID == nil }},
	"static_nlink":          {check: func(o *options) bool { return o.cfg.StaticNlink }},
	"noacl":                 {check: same},
	"ino32_t":               {refused: "-o ino32_t: not supported: st_ino uses 64 bits"},
	"xino=off":              {check: same},
	"xino=auto":             {check: same},
	"xino=on":               {check: same},
	"xino=maybe":            {refused: "-o xino=maybe: want off, auto or on"},
	"redirect_dir=off":      {check: same},
	"redirect_dir=nofollow": {check: same},
	"redirect_dir=on": {refused: "-o redirect_dir=on: not supported: unionfsd neither writes nor follows overlay " +
		"redirect xattrs"},
	"redirect_dir=follow": {refused: "-o redirect_dir=follow: not supported"},
	"index=off":           {check: same},
	"index=on":            {refused: "-o index=on: not supported: a copy-up of a hard-linked lower file breaks the link"},
	"nfs_export=off":      {check: same},
	"nfs_export=on":       {refused: "-o nfs_export=on: not supported"},
	"metacopy=on":         {check: func(o *options) bool { return o.cfg.Metacopy }},
	"metacopy=off":        {check: func(o *options) bool { return !o.cfg.Metacopy }},
}

// peerUsageCases are misuses of the options that work.
var peerUsageCases = []struct {
	args []string
	says string
}{
	{[]string{"-o", "cow=1", "/u:/l", "/m"}, "-o cow=1: cow takes no value"},
	{[]string{"-o", "max_files", "/u:/l", "/m"}, "-o max_files: needs a value"},
	{[]string{"-o", "chroot=", "/u:/l", "/m"}, "-o chroot=: empty path"},
	{[]string{"-o", "dirs=", "/m"}, "-o dirs=: empty branch list"},
	{[]string{"-o", "dirs=/a", "/u:/l", "/m", "/x"}, "too many arguments: want [SOURCE] MOUNTPOINT with dirs="},
	{[]string{"-o", "dirs=/a=RW:/b=RW", "/m"}, "/b: second =RW branch"},
	{[]string{"-o", "dirs=/a,lowerdir=/l", "/m"}, "-o dirs=/a: give the layers either as dirs= or as lowerdir="},
	{[]string{"-o", "chroot=/c,lowerdir=/l", "/m"}, "-o chroot=/c: applies to branch lists"},
	{[]string{"-o", "debug_file=", "/u:/l", "/m"}, "-o debug_file=: empty file name"},
	{[]string{"-o", "allow_root,allow_other", "/u:/l", "/m"}, "allow_other and allow_root exclude each other"},
	{[]string{"-o", "fast_ino=yes", "/u:/l", "/m"}, "-o fast_ino=yes: want a number"},
	{[]string{"-o", "writeback", "/u:/l", "/m"}, "-o writeback: needs a value"},
	{[]string{"-o", "noxattrs=-1", "/u:/l", "/m"}, "-o noxattrs=-1: want a number"},
	{[]string{"-o", "index=maybe", "/u:/l", "/m"}, "-o index=maybe: want off"},
}

func TestParsePeerOptions(t *testing.T) {
	for opt, c := range peerCases {
		t.Run(opt, func(t *testing.T) {
			pos := c.pos
			if pos == nil {
				pos = []string{"/u=RW:/l=RO", "/mnt"}
			}
			args := append(append(append([]string{}, c.args...), "-o", opt), pos...)
			o, err := parseArgs(args, c.euid)
			if c.refused != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("parseArgs(%q) = %v, want a usage error saying %q", args, err, c.refused)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q is more than one line", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", args, err)
			}
			if !c.check(o) {
				t.Fatalf("parseArgs(%q) gave %+v, peer %+v", args, o.cfg, o.peer)
			}
		})
	}
	for _, c := range peerUsageCases {
		_, err := parseArgs(c.args, 0)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("parseArgs(%q) = %v, want a usage error saying %q", c.args, err, c.says)
		}
	}
}

// TestAllowRootNeedsRoot: a user other than root cannot get allow_root,
// which unionfsd could only give as allow_other.
func TestAllowRootNeedsRoot(t *testing.T) {
	_, err := parseArgs([]string{"-o", "allow_root", "/u:/l", "/m"}, 1000)
	if err == nil || !strings.Contains(err.Error(), "-o allow_root: not supported for users other than root") {
		t.Fatalf("allow_root as uid 1000: %v", err)
	}
}

// TestDebugFileAndTraceFlag: --trace=FILE given as a flag wins over -o
// debug_file=, as flags win over -o elsewhere.
func TestDebugFileAndTraceFlag(t *testing.T) {
	o, err := parseArgs([]string{"-o", "debug_file=/a", "--trace=/b", "/u:/l", "/m"}, 0)
	if err != nil || o.trace.dest != "/b" {
		t.Fatalf("got %+v, %v; want trace to /b", o, err)
	}
}

// unionfsFuseTree makes the man page example's three branches below b.base,
// each with its own etc/motd and the group's etc/group.conf, and returns
// them top first.
func unionfsFuseTree(t *testing.T, b *layout) (host, group, common string) {
	t.Helper()
	host, group, common = b.base+"/u/host/etc", b.base+"/u/group/etc", b.base+"/u/common/etc"
	files := map[string]string{
		group + "/motd": "group motd\n", common + "/motd": "common motd\n",
		common + "/hosts": "common hosts\n",
	}
	for _, d := range []string{host, group, common} {
		mkdirT(t, d)
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return host, group, common
}

// checkUnionfsFuseTree checks the merged view of unionfsFuseTree at mnt and
// that a write lands in the =RW branch and nowhere else.
func checkUnionfsFuseTree(t *testing.T, mnt, host, common string) {
	t.Helper()
	if got := readFile(t, mnt+"/motd"); got != "group motd\n" {
		t.Errorf("motd = %q, want the group branch's", got)
	}
	if err := os.WriteFile(mnt+"/hosts", []byte("host hosts\n"), 0o644); err != nil {
		t.Fatalf("write through the union: %v", err)
	}
	if got := readFile(t, host+"/hosts"); got != "host hosts\n" {
		t.Errorf("=RW branch hosts = %q", got)
	}
	if got := readFile(t, common+"/hosts"); got != "common hosts\n" {
		t.Errorf("=RO branch changed: hosts = %q", got)
	}
}

// openFileLimit returns the soft and hard "Max open files" of pid.
func openFileLimit(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			return f[0] + " " + f[1]
		}
	}
	t.Fatalf("no open file limit in /proc/%d/limits", pid)
	return ""
}

// manPageMaxFiles is the man page's max_files=32768, or just under the hard
// limit where that is lower and root lacks CAP_SYS_RESOURCE (containers):
// raising it is then refused, to unionfs-fuse too (TestMaxFilesAsUser
// checks that error).
func manPageMaxFiles(t *testing.T) string {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max > 32768 || haveCap(t, unix.CAP_SYS_RESOURCE) {
		return "32768"
	}
	// One below the hard limit: the daemon starts with the hard limit
	// as its soft one (the Go runtime raises it), so only a value below
	// shows that max_files was applied.
	n := lim.Max - 1
	t.Logf("no CAP_SYS_RESOURCE and a hard open file limit of %d: max_files=%d instead of 32768", lim.Max, n)
	return strconv.FormatUint(n, 10)
}

// haveCap reports whether capability c is in our effective set.
func haveCap(t *testing.T, c int) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<c) != 0
		}
	}
	return false
}

// TestUnionfsFuseManPageExample runs the example of unionfs-fuse's man page
// (today's, and the one before 2024 that also says use_ino) with only the
// paths changed: it mounts, merges, copies up into the =RW branch, sets
// the open file limit and clears nosuid and nodev.
func TestUnionfsFuseManPageExample(t *testing.T) {
	requireRoot(t)
	maxFiles := manPageMaxFiles(t)
	for name, fuseOpts := range map[string]string{
		"unionfs-fuse 3.7": "allow_other,suid,dev,nonempty",
		"unionfs-fuse 2.x": "allow_other,use_ino,suid,dev,nonempty",
	} {
		t.Run(name, func(t *testing.T) {
			b := newLayout(t)
			host, group, common := unionfsFuseTree(t, b)
			pid := mountBackground(t, b, "-o", "cow,max_files="+maxFiles, "-o", fuseOpts,
				host+"=RW:"+group+"=RO:"+common+"=RO", b.mnt)
			checkUnionfsFuseTree(t, b.mnt, host, common)
			if got := openFileLimit(t, pid); got != maxFiles+" "+maxFiles {
				t.Errorf("daemon's open file limit %q, want %s %s (max_files)", got, maxFiles, maxFiles)
			}
			flags := mountFlagsAt(t, b.mnt)
			if flags["nosuid"] || flags["nodev"] {
				t.Errorf("mount flags %v: suid,dev not honoured", flags)
			}
			stopDaemon(t, pid)
			assertNothingLeft(t, b)
		})
	}
}

// TestUnionfsFuseFstab mounts from /etc/fstab through mount(8) and
// mount.fuse3: the line of unionfs-fuse's examples/fstab with the type
// fuse.unionfsd (two =RW branches and lbwrite: refused, nothing mounted),
// the same line with one =RW branch and without lbwrite, and the dirs= form.
// A private mount namespace holds the fstab and the installed binary.
func TestUnionfsFuseFstab(t *testing.T) {
	requireRoot(t)
	requireMountFuse(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) missing")
	}
	opts := "rw,cow,max_files=" + manPageMaxFiles(t) + ",allow_other,use_ino,suid,dev,nonempty"
	cases := []struct {
		name, line string // an fstab line; HOST, GROUP, COMMON and MNT are replaced
		fail       string // what a refused line says
	}{
		{"examples/fstab", "HOST=RW:GROUP=RW MNT fuse.unionfsd " + opts + ",lbwrite 0 0",
			"unionfsd: -o lbwrite: not supported: balances writes over several =RW branches"},
		{"one writable branch", "HOST=RW:GROUP=RO:COMMON=RO MNT fuse.unionfsd " + opts + " 0 0", ""},
		{"dirs=", "none MNT fuse.unionfsd cow,dirs=HOST=RW:GROUP=RO:COMMON=RO 0 0", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newLayout(t)
			host, group, common := unionfsFuseTree(t, b)
			fstab := b.base + "/fstab"
			line := strings.NewReplacer("HOST", host, "GROUP", group, "COMMON", common, "MNT", b.mnt).Replace(c.line)
			if err := os.WriteFile(fstab, []byte(line+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			script := `set -e
mount -t tmpfs nodev /usr/local/sbin
ln -s "$BIN" /usr/local/sbin/unionfsd
mount --bind "$FSTAB" /etc/fstab
if ! mount "$MNT" 2>"$FSTAB.err"; then cat "$FSTAB.err"; exit 3; fi
cat "$MNT/motd"
echo changed > "$MNT/hosts"
umount "$MNT"
`
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "BIN="+unionfsdBin, "MNT="+b.mnt, "FSTAB="+fstab)
			out, err := cmd.CombinedOutput()
			if c.fail != "" {
				if code := cmd.ProcessState.ExitCode(); code != 3 || strings.Count(string(out), "\n") != 1 ||
					!strings.Contains(string(out), c.fail) {
					t.Errorf("fstab line %q: exit %d, output %q; want mount to fail with one line saying %q",
						line, code, out, c.fail)
				}
			} else if err != nil || string(out) != "group motd\n" {
				t.Errorf("fstab line %q: %v: output %q", line, err, out)
			} else if got := readFile(t, host+"/hosts"); got != "changed\n" {
				t.Errorf("=RW branch hosts = %q", got)
			}
			assertNothingLeft(t, b)
		})
	}
}

// TestRefusedPeerOptionsCLI: each refused option is one error line naming
// it, exit status 2, and nothing mounted or left running.
func TestRefusedPeerOptionsCLI(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	for opt, c := range peerCases {
		if c.refused == "" {
			continue
		}
		r := runCLI(t, runOpts{}, "-o", "cow,"+opt, b.up+"=RW:"+b.l1+"=RO", b.mnt)
		assertOneErrorLine(t, r, exitUsage, "-o "+opt, c.refused)
	}
	assertNothingLeft(t, b)
	if entries, _ := os.ReadDir(b.up); len(entries) != 0 {
		t.Errorf("refused mounts wrote into the upper: %v", entries)
	}
}

// TestChrootDirsMount: with chroot=, branches given as absolute or relative
// paths, and a symlink with an absolute target, all resolve inside the
// chroot dir (the real /l1 does not exist), here through dirs= and a SOURCE.
func TestChrootDirsMount(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	if err := os.Symlink("/l1", b.base+"/lowest"); err != nil {
		t.Fatal(err)
	}
	pid := mountBackground(t, b, "-o", "chroot="+b.base+",dirs=/up=RW:l2=RO:/lowest=RO", "none", b.mnt)
	if got := readFile(t, b.mnt+"/b"); got != "b from l2\n" {
		t.Errorf("b = %q", got)
	}
	if got := readFile(t, b.mnt+"/a"); got != "a from l1\n" {
		t.Errorf("a = %q", got)
	}
	if err := os.WriteFile(b.mnt+"/new", []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, b.up+"/new"); got != "new\n" {
		t.Errorf("upper/new = %q", got)
	}
	if m, _ := mountAt(b.mnt); m.source != "none" {
		t.Errorf("source %q, want none", m.source)
	}
	stopDaemon(t, pid)
	assertNothingLeft(t, b)
}

// TestAllowRootMount: with allow_root only root gets in; without it, a
// root mount lets every user in (the default), so the check can fail.
func TestAllowRootMount(t *testing.T) {
	requireRoot(t)
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	for _, opt := range []string{"allow_root", "cow"} {
		t.Run(opt, func(t *testing.T) {
			b := newLayout(t)
			pid := mountBackground(t, b, "-o", opt, b.up+":"+b.l2+":"+b.l1, b.mnt)
			if got := readFile(t, b.mnt+"/a"); got != "a from l1\n" {
				t.Errorf("root reads a = %q", got)
			}
			cat := exec.Command("cat", b.mnt+"/a")
			cat.SysProcAttr = nobody
			out, err := cat.CombinedOutput()
			if opt == "allow_root" && (err == nil || !strings.Contains(string(out), "Permission denied")) {
				t.Errorf("nobody with allow_root: %v, %q; want permission denied", err, out)
			}
			if opt != "allow_root" && (err != nil || string(out) != "a from l1\n") {
				t.Errorf("nobody without allow_root: %v, %q", err, out)
			}
			stopDaemon(t, pid)
			assertNothingLeft(t, b)
		})
	}
}

// TestAutoUnmountMount: with auto_unmount, a daemon killed with SIGKILL
// takes its mount with it (without, the mount would stay, answering
// ENOTCONN), and the watcher ends; a daemon stopped the usual way unmounts
// itself and the watcher leaves the mountpoint alone.
func TestAutoUnmountMount(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			b := newLayout(t)
			r := runCLI(t, runOpts{}, "-o", "auto_unmount", b.up+":"+b.l2+":"+b.l1, b.mnt)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("mount: exit %d, stderr %q", r.code, r.stderr)
			}
			pid := daemonWithWatcher(t, b.mnt)
			if got := readFile(t, b.mnt+"/a"); got != "a from l1\n" {
				t.Errorf("a = %q", got)
			}
			syscall.Kill(pid, sig)
			if !waitGone(pid, 5*time.Second) {
				t.Fatalf("daemon %d still running after %v", pid, sig)
			}
			if !eventually(5*time.Second, func() bool { _, ok := mountAt(b.mnt); return !ok }) {
				t.Errorf("%s still mounted after the daemon died of %v", b.mnt, sig)
			}
			assertNothingLeft(t, b) // the watcher ended too
		})
	}
}

// daemonWithWatcher returns the pid of the daemon serving mnt, which must
// have exactly one other process of ours: its auto_unmount watcher.
func daemonWithWatcher(t *testing.T, mnt string) int {
	t.Helper()
	pids := daemonsFor(mnt)
	if len(pids) != 2 {
		t.Fatalf("want the daemon and its watcher for %s, found %v", mnt, pids)
	}
	for i, p := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			t.Fatal(err)
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if f[1] == strconv.Itoa(pids[1-i]) {
			return pids[1-i] // p is the watcher, its parent the daemon
		}
	}
	t.Fatalf("neither of %v is the other's parent", pids)
	return 0
}

// TestDebugFileMount: debug_file= writes the operation trace to the file.
func TestDebugFileMount(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	log := b.base + "/unionfs_debug.log"
	pid := mountBackground(t, b, "-o", "debug_file="+log, b.up+":"+b.l2+":"+b.l1, b.mnt)
	readFile(t, b.mnt+"/a")
	stopDaemon(t, pid)
	if got := readFile(t, log); !strings.Contains(got, "lookup /a -> layer 2 ("+b.l1+")") {
		t.Errorf("debug file holds %q, want the lookup of /a", got)
	}
	assertNothingLeft(t, b)
}

// TestHideMetaFilesWithUnionfsDir: a branch that still holds unionfs-fuse's
// .unionfs dir cannot be mounted with hide_meta_files (unionfsd would show
// it); without that dir the same command mounts.
func TestHideMetaFilesWithUnionfsDir(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	args := []string{"-o", "cow,hide_meta_files", b.up + "=RW:" + b.l2 + "=RO:" + b.l1 + "=RO", b.mnt}
	meta := mkdirT(t, b.l2+"/.unionfs")
	r := runCLI(t, runOpts{}, args...)
	assertOneErrorLine(t, r, exitFail, meta, "hide_meta_files: unionfs-fuse's metadata dir is in this lower dir")
	assertNothingLeft(t, b)
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	stopDaemon(t, mountBackground(t, b, args...))
	assertNothingLeft(t, b)
}

// TestMaxFilesAsUser: a user cannot raise the limit past its hard limit;
// the error says so and nothing is mounted.
func TestMaxFilesAsUser(t *testing.T) {
	requireRoot(t)
	b := newLayout(t)
	os.Chown(b.up, 65534, 65534)
	os.Chown(b.mnt, 65534, 65534)
	wrap := []string{"prlimit", "--nofile=1024:1024", "--"}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) missing")
	}
	r := runCLI(t, runOpts{wrap: wrap, cred: &syscall.Credential{Uid: 65534, Gid: 65534}},
		"-o", "max_files=4096", b.up+":"+b.l1, b.mnt)
	assertOneErrorLine(t, r, exitFail, "max_files=4096", "cannot set the open-file limit: operation not permitted (hard limit 1024")
	assertNothingLeft(t, b)
}

// readmePlaceholders stand for values in README's option column.
var readmePlaceholders = strings.NewReplacer("=NAME", "=mine", "=N", "=32768", "=DIR", "=/srv",
	"=BRANCHES", "=/a=RW:/b=RO", "=FILE", "=/tmp/trace", "=PATHS", "=/usr/lib/plugins")

// TestReadmePeerOptions checks README's table of the peers' options against
// the parser: every option of a row marked accepted parses, every one of a
// row marked refused is a usage error naming it, and every option the
// parser knows from the peers has a row.
func TestReadmePeerOptions(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "### Options from unionfs-fuse, libfuse and fuse-overlayfs\n")
	if !ok {
		t.Fatal("README.md has no section \"Options from unionfs-fuse, libfuse and fuse-overlayfs\"")
	}
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) != 3 {
			continue
		}
		verdict := strings.TrimSpace(cells[2])
		accepted := strings.HasPrefix(verdict, "accepted")
		if !accepted && !strings.HasPrefix(verdict, "refused") {
			t.Errorf("row %q: want accepted or refused", line)
			continue
		}
		for _, cell := range strings.Split(strings.TrimPrefix(cells[0], "| "), ", ") {
			opt := readmePlaceholders.Replace(strings.Trim(cell, "`"))
			key, _, _ := strings.Cut(opt, "=")
			listed[key] = true
			_, err := parseArgs([]string{"-o", opt, "/u=RW:/l=RO", "/mnt"}, 0)
			var ue *usageError
			switch {
			case accepted && err != nil:
				t.Errorf("README says %s is accepted; parser: %v", opt, err)
			case !accepted && (!errors.As(err, &ue) || !strings.Contains(err.Error(), "-o "+opt+": ")):
				t.Errorf("README says %s is refused; parser: %v", opt, err)
			}
		}
	}
	for key := range peerOptionTable {
		if !listed[key] {
			t.Errorf("-o %s is missing from README's table", key)
		}
	}
}
