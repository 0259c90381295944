package unionfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// secret is what a root-only host file outside the layers holds.
const secret = "TOP-SECRET-HOST-DATA"

// forgedUpper builds a union whose upper holds files with metacopy pointers
// of the writer's choosing (a user-owned upper, an upper received from
// elsewhere), aimed at a root-only file outside the layers. It returns the
// union and the secret file's path.
func forgedUpper(t *testing.T) (*testUnion, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: trusted.* xattrs and a root daemon")
	}
	tu := newLayers(t, 1)
	host := filepath.Join(filepath.Dir(tu.upper), "host-secret")
	writeFile(t, host, secret)
	must(t, os.Chmod(host, 0o600))
	writeFile(t, filepath.Join(tu.lowers[0], "data"), "lower data!")
	must(t, os.Symlink(filepath.Dir(tu.upper), filepath.Join(tu.lowers[0], "link")))
	pointer := func(name, xattr, value string) {
		p := filepath.Join(tu.upper, name)
		writeFile(t, p, "")
		must(t, os.Truncate(p, int64(len(secret))))
		must(t, unix.Lsetxattr(p, xattr, []byte(value), 0))
	}
	// What any writer of the upper can set: user.* with an absolute path
	// (the old format).
	pointer("user-abs", "user.unionfsd.metacopy", host)
	pointer("user-rel", "user.unionfsd.metacopy", "data")
	// Even in the namespace only root can write: paths out of the lowers.
	pointer("trusted-abs", "trusted.unionfsd.metacopy", host)
	pointer("trusted-dotdot", "trusted.unionfsd.metacopy", "../host-secret")
	pointer("trusted-symlink", "trusted.unionfsd.metacopy", "link/host-secret")
	// A good one, as a root daemon writes it.
	pointer("good", "trusted.unionfsd.metacopy", "data")
	return tu, host
}

// A metacopy pointer is followed only when metacopy is on, only from the
// trusted.* namespace when the daemon is root, and only to a file beneath a
// lower layer; every other pointer is refused (EPERM, as overlay refuses
// "to follow metacopy origin"), or finds no data (EIO). The secret never
// shows. Before, user.unionfsd.metacopy was followed to any absolute path,
// metacopy on or off.
func TestMetacopyForgedPointer(t *testing.T) {
	for _, on := range []bool{false, true} {
		tu, _ := forgedUpper(t)
		tu.mount(t, func(c *Config) { c.Metacopy = on; c.AllowOther = true })
		want := map[string]string{
			"user-abs": "EPERM", "user-rel": "EPERM", "trusted-abs": "EPERM", "trusted-dotdot": "EPERM",
			"trusted-symlink": "EIO", "good": "lower data!",
		}
		if !on {
			want["trusted-symlink"], want["good"] = "EPERM", "EPERM"
		}
		for name, w := range want {
			b, err := os.ReadFile(tu.m(name))
			got := string(b)
			if err != nil {
				got = errName(err)
			}
			if strings.Contains(got, secret) || got != w {
				t.Errorf("metacopy=%v: %s reads %q, want %s", on, name, got, w)
			}
			// Nor may a write (which copies the data in) or a truncation
			// bring the secret into the upper.
			if f, err := os.OpenFile(tu.m(name), os.O_WRONLY, 0); err == nil {
				f.Close()
			}
			if b, _ := os.ReadFile(filepath.Join(tu.upper, name)); bytes.Contains(b, []byte(secret)) {
				t.Errorf("metacopy=%v: the secret was copied into the upper as %s", on, name)
			}
		}
	}
}

// errName is the errno name of a failed file operation.
func errName(err error) string {
	var eno unix.Errno
	if pe, ok := err.(*os.PathError); ok {
		if e, ok := pe.Err.(unix.Errno); ok {
			eno = e
		}
	}
	if eno == 0 {
		return err.Error()
	}
	return unix.ErrnoName(eno)
}
