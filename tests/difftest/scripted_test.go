package difftest

import (
	"strings"

	"golang.org/x/sys/unix"
)

// scripted are hand-written sequences over DefaultLayers, one per rule or
// tricky corner; each runs on a fresh pair of mounts.
var scripted = []struct {
	name string
	ops  []Op
}{
	{"create-excl", []Op{
		Create("a", 0o644, true), // exists in a lower: EEXIST
		Create("new", 0o640, true),
		Create("new", 0o600, false),  // exists: opened, mode untouched
		Create("d1/x", 0o600, false), // lower file opened for write: copy-up
		Create("d1/y", 0o600, true),  // whited out in a lower: free
		Create("e/f", 0o600, true),   // under a re-created dir: free
		Create("d2/x", 0o600, true),  // under an opaque dir: free
		Create("missing/x", 0o600, false),
		Create("a/x", 0o600, false),
		Stat("new", true), Stat("d1/x", true), Stat("d1/y", true),
	}},
	{"write-at-offset", []Op{
		Write("d1/x", 3, 10, 1),
		Write("big", 100_000, 5000, 2),
		Write("big", 300_000, 10, 3), // past the end: a hole
		Write("d1/d3/v", 0, 0, 4),    // empty write still copies up
		Write("d1", 0, 1, 5),
		Read("d1/x"), Read("big"), Read("d1/d3/v"),
	}},
	{"append", []Op{
		Append("a", 5, 1), Append("b", 4096, 2), Append("c", 3, 3), // c is a symlink to a
		Append("d1/h2", 7, 4), // one name of a lower hard-link pair
		Read("a"), Read("b"), Read("h1"), Read("d1/h2"),
	}},
	{"truncate", []Op{
		Truncate("big", 10), Truncate("a", 20000), Truncate("d1", 0),
		Truncate("missing", 0), Truncate("f", 0), Truncate("g", 3),
		Read("big"), Read("a"), Stat("g", true),
	}},
	{"open-trunc", []Op{
		OpenTrunc("b"), OpenTrunc("d1/d3/v"), OpenTrunc("d1"), OpenTrunc("f"),
		Read("b"), Stat("d1/d3/v", true),
	}},
	{"fallocate", []Op{Fallocate("a", 100, 5000), Fallocate("d1/x", 0, 1), Read("a")}},
	{"unlink-lower", []Op{
		Unlink("a"), Stat("a", true), Create("a", 0o600, true), Read("a"),
		Unlink("d1/x"), Unlink("d1/h2"), Read("h1"), Unlink("d1"), Unlink("s"), Stat("d1", true),
		Unlink("f"), Unlink("missing"), Unlink("d1/y"), Readdir(""), Readdir("d1"),
	}},
	{"mkdir-rmdir", []Op{
		Mkdir("x", 0o755), Rmdir("x"), Mkdir("a", 0o755), Mkdir("d1/y", 0o700),
		Rmdir("d1"), Rmdir("d1/d3"), Rmdir("a"), Rmdir("e"), Rmdir("missing"),
		Unlink("e/g"), Rmdir("e"), Stat("e", true), Mkdir("e", 0o700), Readdir("e"),
	}},
	{"rmdir-merged-then-mkdir", []Op{
		Unlink("d1/d3/z"), Unlink("d1/d3/w"), Unlink("d1/d3/v"), Readdir("d1/d3"),
		Rmdir("d1/d3"), Mkdir("d1/d3", 0o700), Readdir("d1/d3"), Create("d1/d3/z", 0o644, true),
	}},
	{"rename-file", []Op{
		Rename("a", "b", 0), Read("b"), Stat("a", true),
		Rename("d1/x", "x", 0), Rename("c", "d1/c", 0), Readlink("d1/c"),
		Rename("h1", "d2/h", 0), Read("d1/h2"), Read("d2/h"),
	}},
	{"rename-file-dir-mismatch", []Op{
		Rename("a", "d1", 0), Rename("d1", "a", 0), Rename("a", "d1/x/q", 0), Rename("missing", "a", 0),
	}},
	{"rename-lower-dir", []Op{
		Rename("d1", "x", 0), Readdir("x"), Readdir("x/d3"), Read("x/x"), Stat("d1", true),
		Read("x/h2"), Append("x/h2", 2, 1), Read("h1"),
	}},
	{"rename-dir-over-empty-dir", []Op{
		Mkdir("x", 0o700), Rename("d1", "x", 0), Readdir("x"),
		Unlink("e/g"), Rename("d1/d3", "e", 0), Readdir("e"),
	}},
	{"rename-dir-over-nonempty-dir", []Op{Rename("d1", "d2", 0), Rename("n", "d1/d3", 0), Readdir("d2")}},
	{"rename-dir-into-itself", []Op{Rename("d1", "d1/d3/q", 0), Rename("d1/d3", "d1", 0)}},
	{"rename-dir-then-recreate", []Op{
		Rename("d1", "x", 0), Mkdir("d1", 0o755), Readdir("d1"), Create("d1/y", 0o644, true), Readdir("d1"),
	}},
	{"rename-new-dir-into-merged", []Op{
		Mkdir("x", 0o755), Create("x/q", 0o644, true), Rename("x", "d1/q", 0), Readdir("d1/q"),
		Rename("d1/q", "e", 0), Rename("d1/q", "e/q", 0), Readdir("e"),
	}},
	{"rename-noreplace", []Op{
		Rename("a", "b", unix.RENAME_NOREPLACE), Rename("a", "x", unix.RENAME_NOREPLACE),
		Rename("d1", "d2", unix.RENAME_NOREPLACE), Rename("d1", "y", unix.RENAME_NOREPLACE), Readdir("y"),
	}},
	{"rename-exchange", []Op{
		Rename("a", "b", unix.RENAME_EXCHANGE), Read("a"), Read("b"),
		Rename("d1", "d2", unix.RENAME_EXCHANGE), Readdir("d1"), Readdir("d2"),
		Rename("a", "d1", unix.RENAME_EXCHANGE), Rename("a", "missing", unix.RENAME_EXCHANGE),
	}},
	{"rename-over-whiteout", []Op{
		Unlink("b"), Rename("a", "b", 0), Read("b"), Rmdir("d2/z"), Unlink("d2/z"), Rename("d1", "d2", 0), Readdir("d2"),
	}},
	{"symlink-readlink", []Op{
		Symlink("a", "x"), Readlink("x"), Readlink("c"), Readlink("s"), Readlink("d1/d3/w"), Readlink("a"),
		Symlink("z", "a"), Symlink("missing", "y"), Stat("x", false), Stat("y", false), Read("s/x"),
	}},
	{"link", []Op{
		Link("d1/x", "x"), Write("x", 0, 3, 9), Read("d1/x"), Link("h1", "y"), Read("y"),
		Link("d1", "z"), Link("a", "b"), Link("missing", "z"), Link("c", "d1/c"), Readlink("d1/c"),
		Unlink("d1/x"), Read("x"),
	}},
	{"mkfifo", []Op{
		Mkfifo("x", 0o600), Stat("x", true), Read("x"), Write("f", 0, 1, 1), Mkfifo("a", 0o600), Stat("f", true),
	}},
	{"chmod-chown", []Op{
		Chmod("a", 0o600), Chmod("d1", 0o700), Chmod("c", 0o640), Chmod("f", 0o600),
		Chown("b", 1000, 1001, false), Chown("c", 1001, -1, true), Chown("g", 0, -1, false),
		Chown("d1/d3", -1, 1000, false), Stat("a", true), Stat("g", true), Stat("d1/d3", true),
	}},
	{"copy-up-keeps-metadata", []Op{
		Chmod("d1/d3/v", 0o600), Stat("d1/d3/v", true), Setxattr("a", "user.n1", "x", 0, false), Stat("a", true),
		Write("n/m", 0, 1, 1), Stat("n", true),
	}},
	{"utimes", []Op{
		Utimes("a", 1_100_000_000, 5, 1_200_000_000, 6, false),
		Utimes("c", 1_100_000_000, unix.UTIME_OMIT, 1_200_000_001, 7, true),
		Utimes("d1/x", 1_100_000_000, 0, 1_200_000_002, unix.UTIME_OMIT, false),
		Utimes("d1", 1_100_000_000, 0, 1_200_000_003, 0, false),
		Stat("a", true), Stat("c", true), Stat("d1/x", true),
	}},
	{"xattrs", []Op{
		Setxattr("a", "user.n1", "v", 0, false), Getxattr("a", "user.n1", false), Getxattr("b", "user.k", false),
		Getxattr("b", "user.k2", false), Getxattr("b", "user.none", false),
		Listxattr("b", false), Removexattr("b", "user.k", false), Listxattr("b", false),
		Setxattr("b", "user.k2", "x", unix.XATTR_CREATE, false), Setxattr("b", "user.n2", "x", unix.XATTR_REPLACE, false),
		Setxattr("c", "user.n1", "v", 0, true), Setxattr("c", "user.n1", "w", 0, false), Getxattr("a", "user.n1", false),
		Listxattr("d2", false), Listxattr("d1", false), Removexattr("d2", "user.dir", false), Listxattr("d2", false),
		Setxattr("missing", "user.k", "v", 0, false), Removexattr("a", "user.none", false),
	}},
	{"stat-missing", []Op{
		Stat("missing", true), Stat("a/x", true), Stat("d1/y", true), Stat("e/f", true), Stat("d2/x", true),
		Readdir(""), Readdir("d1"), Readdir("d2"), Readdir("e"), Readdir("a"), Readdir("missing"),
	}},
	{"setgid-dir", []Op{
		Chown("d1", -1, 1000, false), Chmod("d1", 0o2775), Create("d1/a", 0o644, false), Mkdir("d1/q", 0o755),
		Stat("d1/a", true), Stat("d1/q", true),
	}},
	// Regressions: each of these diverged once (see the difftest report).
	{"lower-hardlink-append", []Op{Append("d1/h2", 7, 4), Read("h1"), Read("d1/h2")}},
	{"lower-hardlink-rename", []Op{Rename("h1", "q", 0), Read("d1/h2"), Read("q")}},
	{"lower-hardlink-link", []Op{Link("h1", "y"), Read("d1/h2"), Append("y", 1, 1), Read("h1")}},
	{"mode-zero", []Op{Chmod("a", 0), Chmod("d1", 0), Mkdir("q", 0), Create("r", 0, true), Mkfifo("p", 0)}},
	{"create-setid-bits", []Op{Create("q", 0o2755, true), Create("r", 0o4755, true), Create("d1/q", 0o6711, true), Mkdir("x", 0o711), Create("x/z", 0o2755, false)}},
	{"copy-up-identity-after-dir-rename", []Op{
		Unlink("b"), Write("d1/d3/w", 5000, 4096, 1), Rename("d1/d3", "d1/q", 0), Create("b", 0o644, true),
	}},
	{"fd-setattr-after-unlink", []Op{
		Open(1, "d1/x", unix.O_WRONLY), Unlink("d1/x"), FdChmod(1, 0o600), FdChown(1, 1000, 1000),
		FdUtimes(1, 1_100_000_000, 1, 1_200_000_000, 2), FdTruncate(1, 3), FdStat(1), FdWrite(1, 0, 5, 1), FdRead(1), Close(1),
	}},
	{"fd-setattr-after-rename-over", []Op{
		Open(2, "big", unix.O_RDWR), Rename("a", "big", 0), FdChmod(2, 0o700), FdStat(2), Read("big"), Close(2),
	}},
	{"fd-stat-removed-dir", []Op{Mkdir("y", 0o755), Open(1, "y", unix.O_RDONLY), Rmdir("y"), FdStat(1), Close(1)}},
	{"as-user", []Op{
		AsUser(1000, Create("x", 0o644, true)), AsUser(1000, Write("a", 0, 1, 1)), AsUser(1000, Mkdir("n/q", 0o755)),
		AsUser(1000, Read("n/m")), AsUser(1000, Chmod("a", 0o777)), AsUser(1000, Unlink("d1/x")),
		Chmod("d1", 0o777), AsUser(1000, Create("d1/q", 0o644, true)), AsUser(1000, Chown("d1/q", -1, 1000, false)),
		AsUser(1000, Setxattr("d1/q", "user.k", "v", 0, false)), AsUser(1000, Setxattr("a", "user.k", "v", 0, false)),
		AsUser(1000, Rename("d1/q", "d1/r", 0)), AsUser(1000, Rename("d1/x", "d1/r", 0)), Stat("d1/q", true),
	}},
	// Writes and truncates by a caller without CAP_FSETID drop setuid, and
	// setgid when group-exec is set; root's keep them; any write drops file
	// capabilities. unionfsd does this itself (FUSE_HANDLE_KILLPRIV_V2), also
	// for writes the kernel passes through to the upper file.
	{"kill-suid-sgid-caps", []Op{
		AsUser(1000, Write("g", 0, 1, 1)), Stat("g", true),
		Chmod("a", 0o6777), AsUser(1000, Write("a", 0, 2, 2)), Stat("a", true),
		Chmod("a", 0o6777), AsUser(1000, Write("a", 3, 2, 3)), Stat("a", true),
		Chmod("d1/x", 0o2767), AsUser(1000, Write("d1/x", 0, 2, 4)), Stat("d1/x", true),
		Chmod("big", 0o4777), AsUser(1000, Truncate("big", 5)), Stat("big", true),
		Chmod("h1", 0o6777), AsUser(1000, OpenTrunc("h1")), Stat("h1", true),
		Chmod("b", 0o6777), Write("b", 0, 1, 5), Truncate("b", 3), Stat("b", true),
		Chmod("e/g", 0o4777), Chown("e/g", 1000, -1, false), Stat("e/g", true),
		Create("x", 0o755, true), Setxattr("x", "security.capability", capNetBindService, 0, false),
		Getxattr("x", "security.capability", false), Write("x", 0, 1, 6), Getxattr("x", "security.capability", false),
		Setxattr("x", "security.capability", capNetBindService, 0, false), Truncate("x", 0),
		Getxattr("x", "security.capability", false),
		Chmod("d1/x", 02775), Chown("d1/x", -1, -1, true), Stat("d1/x", true),
		Chmod("n/m", 04755), Chown("n/m", -1, -1, false), Stat("n/m", true),
		Create("y", 0o666, true), Open(1, "y", unix.O_WRONLY), Chmod("y", 04777),
		AsUser(1000, FdWrite(1, 0, 3, 7)), Stat("y", true), Close(1),
		Chmod("y", 04755), AsUser(1000, Chown("y", -1, -1, false)), Stat("y", true),
		Chmod("y", 04777), Open(2, "y", unix.O_WRONLY), AsUser(1000, FdWrite(2, 0, 3, 8)), Stat("y", true), Close(2),
	}},
	{"tmpfile", []Op{
		Open(0, "d1", unix.O_TMPFILE|unix.O_RDWR), FdWrite(0, 0, 10, 1), FdRead(0), FdStat(0), Readdir("d1"), Close(0),
		Open(1, "n", unix.O_TMPFILE|unix.O_WRONLY), Close(1),
	}},
	{"long-names", longNameOps()},
}

// strictScripted are sequences where a reader that opened a lower file
// before its copy-up reads or stats it after. Overlay (since Linux 4.19)
// shows such a reader the upper copy; unionfsd does only with
// lower_passthrough=off (or without passthrough): by default the reader
// keeps the lower copy, as overlay before 4.19 did (README: Lower
// passthrough; unionfs/lowerpt_test.go tests that behaviour).
var strictScripted = []struct {
	name string
	ops  []Op
}{
	{"fd-copy-up-while-open", []Op{
		Open(0, "a", unix.O_RDONLY), Open(1, "a", unix.O_WRONLY), FdWrite(1, 0, 3, 1), FdRead(0),
		Write("a", 1, 2, 2), FdRead(0), Chmod("a", 0o600), FdStat(0), Close(0), Close(1),
	}},
}

// longNameOps exercises names of 250 to 255 bytes, which have no room for
// the ".wh." prefix past 251: every operation on fresh names, and the
// deletion of the lower name of that length (DefaultLayers' longName).
func longNameOps() []Op {
	ops := []Op{Read(longName), Unlink(longName), Stat(longName, true), Readdir(""),
		Create(longName, 0o600, true), Read(longName), Unlink(longName), Readdir("")}
	for n := 250; n <= 255; n++ {
		f, d := strings.Repeat("f", n), "d1/"+strings.Repeat("d", n)
		ops = append(ops,
			Create(f, 0o644, true), Write(f, 0, 5, uint32(n)), Chmod(f, 0o600), Chown(f, 1000, 1000, true),
			Truncate(f, 2), OpenTrunc(f), Link(f, "d1/"+f), Rename(f, "d2/"+f, 0), Stat("d2/"+f, true),
			Setxattr("d2/"+f, "user.k", "v", 0, true), Listxattr("d2/"+f, true),
			Mkdir(d, 0o755), Mkfifo(d+"/"+f, 0o644), Rename(d, "e/"+strings.Repeat("e", n), 0),
			Readdir("e"), Unlink("e/"+strings.Repeat("e", n)+"/"+f), Rmdir("e/"+strings.Repeat("e", n)),
			Unlink("d2/"+f), Unlink("d1/"+f), Readdir(""), Readdir("d1"), Readdir("d2"))
	}
	return ops
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2,
// little endian) granting CAP_NET_BIND_SERVICE.
const capNetBindService = "\x00\x00\x00\x02" + "\x00\x04\x00\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"
