package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParseBranches checks the unionfs-fuse branch list parser: it never
// panics, refuses only with a usage error, returns no empty path, and what
// it returns, written back as a marked list, parses to the same layers.
func FuzzParseBranches(f *testing.F) {
	for in := range splitListCases {
		f.Add(in)
	}
	for _, c := range usageErrorCases {
		for _, a := range c.args {
			f.Add(a)
		}
	}
	for _, s := range []string{"up:lo", "a=RW:b=ro:c", "a=RO:b=RO", `x\:y=RW:z`, "p=RW=RO:q", "a=b/c", "a=", "/=RW:/l"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		upper, lowers, err := parseBranches(spec)
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseBranches(%q): %v is not a usage error", spec, err)
			}
			return
		}
		n := len(lowers)
		if upper != "" {
			n++
		}
		if n != len(splitList(spec, ':')) {
			t.Fatalf("parseBranches(%q) = %q, %q: %d layers from %d branches", spec, upper, lowers, n, len(splitList(spec, ':')))
		}
		for _, p := range lowers {
			if p == "" {
				t.Fatalf("parseBranches(%q): empty lower path in %q", spec, lowers)
			}
		}
		var parts []string
		if upper != "" {
			parts = append(parts, escapeColons(upper)+"=RW")
		}
		for _, l := range lowers {
			parts = append(parts, escapeColons(l)+"=RO")
		}
		again := strings.Join(parts, ":")
		u2, l2, err := parseBranches(again)
		if err != nil || u2 != upper || !reflect.DeepEqual(l2, lowers) {
			t.Fatalf("parseBranches(%q) = %q, %q; written back as %q it parses to %q, %q, %v",
				spec, upper, lowers, again, u2, l2, err)
		}
	})
}

func escapeColons(p string) string { return strings.ReplaceAll(p, ":", `\:`) }

// FuzzParseMountOptions checks the -o parser: it never panics, refuses only
// with a usage error, keeps its values in range, and parsing one -o list
// equals parsing each of its options as an -o of its own.
func FuzzParseMountOptions(f *testing.F) {
	for in := range splitOptionsCases {
		f.Add(in)
	}
	for _, c := range usageErrorCases {
		for i, a := range c.args {
			if a == "-o" && i+1 < len(c.args) {
				f.Add(c.args[i+1])
			}
		}
	}
	for opt := range peerCases {
		f.Add(opt)
	}
	f.Add("cow,max_files=32768,allow_other,use_ino,suid,dev,nonempty,dirs=/a=RW:/b=RO,chroot=/c")
	for _, s := range []string{"lowerdir=/a:/b,upperdir=/u,workdir=/w", "noexec,exec,nosuid,suid,nodev,dev",
		"timeout=0.5,entry_timeout=1s", "uidmapping=0:1000:1:1:100000:65536,squash_to_uid=5",
		`context="a:b,c",ro`, `lowerdir=/a\,b`, "x-systemd.automount,defaults"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		mo, err := parseMountOptions([]string{arg})
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseMountOptions(%q): %v is not a usage error", arg, err)
			}
		} else {
			checkMountOptionsInRange(t, arg, mo)
		}
		var each []string
		for _, o := range splitOptions(arg) {
			each = append(each, strings.ReplaceAll(o, ",", `\,`))
		}
		mo2, err2 := parseMountOptions(each)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !reflect.DeepEqual(mo, mo2) {
			t.Fatalf("parseMountOptions(%q) = %+v, %v; option by option %q = %+v, %v", arg, mo, err, each, mo2, err2)
		}
		parseArgs([]string{"-o", arg, "up:lo", "mnt"}, 1000) // must not panic
	})
}

func checkMountOptionsInRange(t *testing.T, arg string, mo *mountOptions) {
	for _, l := range mo.lowerdir {
		if l == "" {
			t.Fatalf("parseMountOptions(%q): empty lowerdir entry in %q", arg, mo.lowerdir)
		}
	}
	for _, d := range []*time.Duration{mo.entry, mo.attr, mo.negative} {
		if d != nil && (*d < 0 || *d > maxTimeoutSeconds*time.Second) {
			t.Fatalf("parseMountOptions(%q): timeout %d ns out of range", arg, *d)
		}
	}
	if mo.peer.maxFiles != 0 && mo.peer.maxFiles < minMaxFiles {
		t.Fatalf("parseMountOptions(%q): max_files=%d accepted", arg, mo.peer.maxFiles)
	}
	for _, id := range []*uint32{mo.squashUID, mo.squashGID} {
		if id != nil && *id == 1<<32-1 {
			t.Fatalf("parseMountOptions(%q): (uid_t)-1 accepted as an id", arg)
		}
	}
}
