package difftest

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// sharedScripted exercises what two users who share a group can and cannot
// do to each other's files (SharedLayers): each op's errno and the trees
// after it must match kernel overlay.
var sharedScripted = []Op{
	// A /tmp-like sticky dir: only the owner of an entry (or of the dir)
	// may remove or rename it.
	AsUser(User2, Unlink("tmp/a")), AsUser(User1, Unlink("tmp/b")), AsUser(User1, Rename("tmp/b", "tmp/c", 0)),
	AsUser(User1, Rename("tmp/a", "tmp/b", 0)), AsUser(User2, Rename("tmp/new", "tmp/a", unix.RENAME_EXCHANGE)),
	AsUser(User1, Rmdir("tmp/bd")), AsUser(User2, Rmdir("tmp/ad")), AsUser(User2, Unlink("tmp/r")),
	AsUser(User2, Create("tmp/ad/f", 0o644, false)), AsUser(User1, Unlink("tmp/ad/f")),
	AsUser(User2, Truncate("tmp/a", 1)), AsUser(User1, Utimes("tmp/b", 1_100_000_000, 0, 1_200_000_000, 0, false)),
	AsUser(User1, Link("tmp/b", "tmp/l")), AsUser(User1, Create("tmp/c", 0o600, true)), AsUser(User2, Read("tmp/c")),
	AsUser(User1, Unlink("tmp/a")), AsUser(User1, Rmdir("tmp/ad")),
	// A setgid dir of the shared group: new entries take its group, new
	// dirs its setgid bit.
	AsUser(User1, Create("sg/n", 0o644, false)), AsUser(User2, Mkdir("sg/d", 0o755)), Stat("sg/d", false),
	AsUser(User2, Write("sg/f", 0, 5, 1)), AsUser(User2, Chown("sg/f", -1, SharedGID, false)),
	AsUser(User1, Chown("sg/f", -1, User1, false)), AsUser(User1, Chown("sg/f", -1, User2, false)),
	AsUser(User1, Chmod("sg/f", 0o2775)), Stat("sg/f", false), AsUser(User1, Chown("sg/f", -1, SharedGID, false)),
	AsUser(User2, Write("sg/sub/g", 0, 3, 2)), Stat("sg/sub/g", false), AsUser(User1, Create("sg/sub/n", 0o664, false)),
	// Group-only modes: the owner class wins even when it has less.
	AsUser(User1, Read("grp/f")), AsUser(User2, Read("grp/f")), AsUser(User2, Write("grp/f", 0, 4, 3)),
	AsUser(User1, Read("grp/o")), AsUser(User2, Read("grp/o")), AsUser(1000, Read("grp/o")),
	AsUser(User1, Write("grp/x", 0, 4, 4)), AsUser(User1, Readdir("grp")), AsUser(1000, Readdir("grp")),
	AsUser(User1, Mkdir("grp/d", 0o770)), AsUser(User2, Rmdir("grp/d")), AsUser(User1, Chmod("grp/f", 0o640)),
	AsUser(User2, Chmod("grp/x", 0o070)), AsUser(User1, Read("g6")), AsUser(User1, Write("g6", 0, 2, 5)),
	AsUser(User2, Setxattr("sg/f", "user.k", "v", 0, false)), AsUser(User1, Setxattr("grp/o", "user.k", "v", 0, false)),
	// A private dir.
	AsUser(User2, Read("priv/f")), AsUser(User2, Readdir("priv")), AsUser(User1, Rename("priv/f", "tmp/f", 0)),
}

// TestUnionfsdUsers runs operations as two unprivileged users with a
// shared group, and root, on an allow_other mount: sticky dirs, setgid dirs
// and group-only modes must give the same errno and the same trees as
// kernel overlay. The random part is kept short.
func TestUnionfsdUsers(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: SharedLayers(), Ref: Overlay, Cand: candidate(t, OverlayFormat)}
	t.Run("scripted", func(t *testing.T) {
		check(t, s, sharedScripted, Options{TreeEvery: 1, StrictUpper: *flagStrict})
	})
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			check(t, s, RandomShared(seed+400, min(*flagOps, 1500)), options())
		})
	}
}

// TestHarnessUsersOverlayVsOverlay checks the two-user setup itself: two
// overlay mounts never diverge.
func TestHarnessUsersOverlayVsOverlay(t *testing.T) {
	needMounts(t)
	s := Setup{Layers: SharedLayers(), Ref: Overlay, Cand: Overlay}
	Check(t, s, sharedScripted, Options{TreeEvery: 1}, 0)
	Check(t, s, RandomShared(seeds()[0]+400, min(*flagOps, 500)), options(), 0)
}
