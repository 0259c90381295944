package mountinfo

import (
	"os"
	"strings"
	"testing"
)

func TestUnescape(t *testing.T) {
	cases := map[string]string{
		`/plain`:         "/plain",
		`/a\040b`:        "/a b",
		`/t\011x\012y`:   "/t\tx\ny",
		`/back\134slash`: `/back\slash`,
		`/short\04`:      `/short\04`,
	}
	for in, want := range cases {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	in := strings.Join([]string{
		`36 35 98:0 /mnt1 /mnt/a\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue`,
		`40 25 0:52 / /m rw shared:7 - fuse.unionfsd unionfsd rw,user_id=0`,
		`41 25 0:53 / /x rw - proc proc`,
		`garbage`,
		`42 25 0:54 / /y rw`,
	}, "\n")
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Major: 98, Minor: 0, Root: "/mnt1", Point: "/mnt/a b", FSType: "ext3", Source: "/dev/root", SuperOpts: "rw,errors=continue"},
		{Major: 0, Minor: 52, Root: "/", Point: "/m", FSType: "fuse.unionfsd", Source: "unionfsd", SuperOpts: "rw,user_id=0"},
		{Major: 0, Minor: 53, Root: "/", Point: "/x", FSType: "proc", Source: "proc"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mounts %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestReadHasRoot reads our own mountinfo: the root is always mounted.
func TestReadHasRoot(t *testing.T) {
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Skip("no /proc")
	}
	ms, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Point == "/" {
			return
		}
	}
	t.Errorf("no mount at / among %d mounts", len(ms))
}
