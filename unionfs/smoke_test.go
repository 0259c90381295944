package unionfs

import (
	"os"
	"testing"
)

func TestSmoke(t *testing.T) {
	tu := newLayers(t, 2)
	writeFile(t, tu.lowers[1]+"/a", "a1")
	writeFile(t, tu.lowers[0]+"/a", "a0")
	writeFile(t, tu.lowers[1]+"/d/x", "x")
	writeFile(t, tu.lowers[0]+"/d/y", "y")
	tu.mount(t, nil)
	assertTree(t, "merged", tu.mnt, []string{"a = a0", "d/", "d/x = x", "d/y = y"})
	if err := os.Remove(tu.m("d/x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tu.m("a"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	assertTree(t, "merged", tu.mnt, []string{"a = new", "d/", "d/y = y"})
	assertTree(t, "upper", tu.upper, []string{"a = new", "d/", "d/.wh.x = "})
}
