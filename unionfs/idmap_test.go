package unionfs

import (
	"os"
	"syscall"
	"testing"
)

// TestIDMapping mounts with fuse-overlayfs style maps: stored (host) ids
// show as container ids, and ids given through the mount are stored mapped.
func TestIDMapping(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/f", "f")
	must(t, os.Lchown(tu.lowers[0]+"/f", 100005, 100006))
	writeFile(t, tu.lowers[0]+"/outside", "o")
	must(t, os.Lchown(tu.lowers[0]+"/outside", 5, 5))
	tu.mount(t, func(c *Config) {
		c.UIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		c.GIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	})
	var st syscall.Stat_t
	must(t, syscall.Lstat(tu.m("f"), &st))
	if st.Uid != 5 || st.Gid != 6 {
		t.Errorf("f shows %d:%d, want 5:6", st.Uid, st.Gid)
	}
	must(t, syscall.Lstat(tu.m("outside"), &st))
	if st.Uid != overflowID || st.Gid != overflowID {
		t.Errorf("unmapped owner shows %d:%d, want %d", st.Uid, st.Gid, overflowID)
	}
	must(t, os.Lchown(tu.m("f"), 7, 8))
	must(t, syscall.Lstat(tu.upper+"/f", &st))
	if st.Uid != 100007 || st.Gid != 100008 {
		t.Errorf("chown 7:8 stored %d:%d, want 100007:100008", st.Uid, st.Gid)
	}
	wantErrno(t, os.Lchown(tu.m("f"), 70000, -1), syscall.EINVAL)
	must(t, os.WriteFile(tu.m("new"), []byte("n"), 0o644))
	must(t, syscall.Lstat(tu.upper+"/new", &st))
	if st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("root's new file stored as %d:%d, want 100000:100000", st.Uid, st.Gid)
	}
}

func TestSquashAndStaticNlink(t *testing.T) {
	tu := newLayers(t, 1)
	writeFile(t, tu.lowers[0]+"/d/sub/f", "f")
	must(t, os.Lchown(tu.lowers[0]+"/d/sub/f", 1234, 5678))
	zero := uint32(0)
	tu.mount(t, func(c *Config) { c.SquashUID, c.SquashGID, c.StaticNlink = &zero, &zero, true })
	var st syscall.Stat_t
	must(t, syscall.Lstat(tu.m("d/sub/f"), &st))
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("squashed owner %d:%d, want 0:0", st.Uid, st.Gid)
	}
	must(t, syscall.Lstat(tu.m("d"), &st))
	if st.Nlink != 1 {
		t.Errorf("static_nlink: dir nlink %d, want 1", st.Nlink)
	}
}
