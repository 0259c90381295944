package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unionfsd/unionfsd/unionfs"
)

// want is the part of a parsed command line a case checks.
type want struct {
	lowers     []string
	upper      string
	work       string
	mountpoint string
	fsName     string
}

func TestParseLayers(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want want
	}{
		{"branches unmarked: first is upper", []string{"up:l2:l1", "mnt"},
			want{lowers: []string{"l2", "l1"}, upper: "up", mountpoint: "mnt"}},
		{"single unmarked branch", []string{"up", "mnt"},
			want{upper: "up", mountpoint: "mnt"}},
		{"RW and RO marks", []string{"-o", "cow", "b=RW:a=RO", "mnt"},
			want{lowers: []string{"a"}, upper: "b", mountpoint: "mnt"}},
		{"marks are case-insensitive", []string{"b=rw:a=ro", "mnt"},
			want{lowers: []string{"a"}, upper: "b", mountpoint: "mnt"}},
		{"with marks, unmarked is read-only", []string{"b=RW:a", "mnt"},
			want{lowers: []string{"a"}, upper: "b", mountpoint: "mnt"}},
		{"all RO is a read-only union", []string{"b=RO:a=RO", "mnt"},
			want{lowers: []string{"b", "a"}, mountpoint: "mnt"}},
		{"unmarked top with marks below is read-only", []string{"b:a=RO", "mnt"},
			want{lowers: []string{"b", "a"}, mountpoint: "mnt"}},
		{"escaped colon", []string{`/x/a\:b:/c`, "mnt"},
			want{lowers: []string{"/c"}, upper: "/x/a:b", mountpoint: "mnt"}},
		{"= inside a dir name is not a mark", []string{"/x/k=v/up:/l", "mnt"},
			want{lowers: []string{"/l"}, upper: "/x/k=v/up", mountpoint: "mnt"}},
		{"--workdir with branches", []string{"--workdir", "/w", "up:lo", "mnt"},
			want{lowers: []string{"lo"}, upper: "up", work: "/w", mountpoint: "mnt"}},
		{"overlay style with source", []string{"-o", "lowerdir=l1:l2,upperdir=u,workdir=w", "none", "mnt"},
			want{lowers: []string{"l1", "l2"}, upper: "u", work: "w", mountpoint: "mnt", fsName: "none"}},
		{"overlay style without source", []string{"-o", "lowerdir=l1", "mnt"},
			want{lowers: []string{"l1"}, mountpoint: "mnt"}},
		{"repeated -o, last wins", []string{"-o", "lowerdir=x", "-o", "upperdir=u", "-olowerdir=l1:l2", "mnt"},
			want{lowers: []string{"l1", "l2"}, upper: "u", mountpoint: "mnt"}},
		{"mount.fuse3 argv", []string{"none", "/m", "-o", "rw,noatime,lowerdir=/a:/b,upperdir=/u,workdir=/w,dev,suid"},
			want{lowers: []string{"/a", "/b"}, upper: "/u", work: "/w", mountpoint: "/m", fsName: "none"}},
		{"ro drops the upper", []string{"-o", "lowerdir=l,upperdir=u,workdir=w,ro", "mnt"},
			want{lowers: []string{"l"}, mountpoint: "mnt"}},
		{"rw after ro", []string{"-o", "ro", "-o", "rw,lowerdir=l,upperdir=u", "mnt"},
			want{lowers: []string{"l"}, upper: "u", mountpoint: "mnt"}},
		{"ro with branches", []string{"-o", "ro", "up:l2:l1", "mnt"},
			want{lowers: []string{"l2", "l1"}, mountpoint: "mnt"}},
		{"fsname beats source", []string{"-o", "lowerdir=l,fsname=mine", "none", "mnt"},
			want{lowers: []string{"l"}, mountpoint: "mnt", fsName: "mine"}},
		{"escaped comma in -o", []string{"-o", `lowerdir=/a\,b:/c`, "mnt"},
			want{lowers: []string{"/a,b", "/c"}, mountpoint: "mnt"}},
		{"generic mount options ignored", []string{"-o", "nosuid,nodev,relatime,_netdev,nofail," +
			"default_permissions,nonempty,subtype=unionfsd,x-systemd.automount,comment=hi,index=off,lowerdir=l", "mnt"},
			want{lowers: []string{"l"}, mountpoint: "mnt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseArgs(c.args, 0)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", c.args, err)
			}
			got := want{lowers: o.cfg.Lowers, upper: o.cfg.Upper, work: o.cfg.Work,
				mountpoint: o.mountpoint, fsName: o.cfg.FsName}
			if c.want.fsName == "" {
				c.want.fsName = unionfs.DefaultConfig().FsName
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("parseArgs(%q)\n got %+v\nwant %+v", c.args, got, c.want)
			}
		})
	}
}

func TestParseTuning(t *testing.T) {
	def := unionfs.DefaultConfig()
	cases := []struct {
		name  string
		args  []string
		euid  int
		check func(o *options) bool
	}{
		{"defaults", nil, 1000, func(o *options) bool {
			c := o.cfg
			return c.EntryTimeout == def.EntryTimeout && c.AttrTimeout == def.AttrTimeout &&
				c.NegativeTimeout == def.NegativeTimeout && c.Fsync == def.Fsync &&
				c.Passthrough == def.Passthrough && !c.AllowOther && !c.Debug && !o.foreground
		}},
		{"allow_other by default for root", nil, 0, func(o *options) bool { return o.cfg.AllowOther }},
		{"allow_other option", []string{"-o", "allow_other"}, 1000, func(o *options) bool { return o.cfg.AllowOther }},
		{"fsync=0", []string{"-o", "fsync=0"}, 0, func(o *options) bool { return !o.cfg.Fsync }},
		{"volatile", []string{"-o", "volatile"}, 0, func(o *options) bool { return !o.cfg.Fsync }},
		{"passthrough=off", []string{"-o", "passthrough=off"}, 0, func(o *options) bool { return !o.cfg.Passthrough }},
		{"--passthrough=false", []string{"--passthrough=false"}, 0, func(o *options) bool { return !o.cfg.Passthrough }},
		{"flag beats -o", []string{"-o", "passthrough=off", "--passthrough"}, 0, func(o *options) bool { return o.cfg.Passthrough }},
		{"lower passthrough default", nil, 0, func(o *options) bool { return o.cfg.LowerPassthrough }},
		{"lower_passthrough=off", []string{"-o", "lower_passthrough=off"}, 0, func(o *options) bool { return !o.cfg.LowerPassthrough }},
		{"--lower-passthrough=false", []string{"--lower-passthrough=false"}, 0, func(o *options) bool { return !o.cfg.LowerPassthrough }},
		{"lower flag beats -o", []string{"-o", "lower_passthrough=off", "--lower-passthrough"}, 0, func(o *options) bool { return o.cfg.LowerPassthrough }},
		{"io_uring default", nil, 0, func(o *options) bool { return o.cfg.IoUring == def.IoUring }},
		{"-o io_uring=on", []string{"-o", "io_uring=on"}, 0, func(o *options) bool { return o.cfg.IoUring == unionfs.IoUringOn }},
		{"--io-uring=auto", []string{"--io-uring=auto"}, 0, func(o *options) bool { return o.cfg.IoUring == unionfs.IoUringAuto }},
		{"--io-uring beats -o", []string{"-o", "io_uring=on", "--io-uring", "off"}, 0, func(o *options) bool { return o.cfg.IoUring == unionfs.IoUringOff }},
		{"timeout sets all three", []string{"-o", "timeout=0.25"}, 0, func(o *options) bool {
			q := 250 * time.Millisecond
			return o.cfg.EntryTimeout == q && o.cfg.AttrTimeout == q && o.cfg.NegativeTimeout == q
		}},
		{"single timeouts", []string{"-o", "entry_timeout=2,attr_timeout=3s,negative_timeout=0"}, 0, func(o *options) bool {
			return o.cfg.EntryTimeout == 2*time.Second && o.cfg.AttrTimeout == 3*time.Second && o.cfg.NegativeTimeout == 0
		}},
		{"long timeout flags beat -o", []string{"-o", "timeout=5", "--entry-timeout", "100ms", "--negative-timeout=0s"}, 0,
			func(o *options) bool {
				return o.cfg.EntryTimeout == 100*time.Millisecond && o.cfg.AttrTimeout == 5*time.Second &&
					o.cfg.NegativeTimeout == 0
			}},
		{"-d implies -f", []string{"-d"}, 0, func(o *options) bool { return o.cfg.Debug && o.foreground }},
		{"-o debug", []string{"-o", "debug"}, 0, func(o *options) bool { return o.cfg.Debug && o.foreground }},
		{"-f", []string{"-f"}, 0, func(o *options) bool { return o.foreground && !o.cfg.Debug }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(c.args, "up:lo", "mnt")
			o, err := parseArgs(args, c.euid)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", args, err)
			}
			if !c.check(o) {
				t.Fatalf("parseArgs(%q) gave %+v", args, o.cfg)
			}
		})
	}
}

func TestParseHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"--help", "a", "b", "c"}} {
		if o, err := parseArgs(args, 0); err != nil || !o.help {
			t.Errorf("parseArgs(%q) = %+v, %v; want help", args, o, err)
		}
	}
	if o, err := parseArgs([]string{"--version"}, 0); err != nil || !o.version {
		t.Errorf("--version: %+v, %v", o, err)
	}
}

// usageErrorCases are command lines that are usage errors, and what the
// error says; the fuzz targets start from them too.
var usageErrorCases = []struct {
	args []string
	says string
}{
	{nil, "missing BRANCHES and MOUNTPOINT"},
	{[]string{"a:b"}, "a:b: missing MOUNTPOINT"},
	{[]string{"a", "b", "c"}, "too many arguments"},
	{[]string{"-o", "lowerdir=l", "s", "m", "x"}, "too many arguments"},
	{[]string{"-o", "lowerdir=l"}, "missing MOUNTPOINT"},
	{[]string{"b=XX:a", "m"}, `b: unknown branch mode "XX"`},
	{[]string{"b=RW:a=RW", "m"}, "a: second =RW branch"},
	{[]string{"b=RO:a=RW", "m"}, "a: the =RW branch must come first"},
	{[]string{"b::a", "m"}, "empty branch"},
	{[]string{"=RW:a", "m"}, "without a path"},
	{[]string{"-o", "lowerdir=", "m"}, "empty lowerdir"},
	{[]string{"-o", "lowerdir=a::b", "m"}, "empty layer path"},
	{[]string{"-o", "lowerdir=a,workdir=/w", "m"}, "/w: workdir given without an upper dir"},
	{[]string{"--workdir", "/w", "a=RO:b=RO", "m"}, "/w: workdir given without an upper dir"},
	{[]string{"-o", "upperdir=/u", "m"}, "/u: upperdir given without lowerdir"},
	{[]string{"-o", "upperdir=", "a:b", "m"}, "upperdir=: empty path"},
	{[]string{"-o", "io_uring=yes", "a:b", "m"}, "-o io_uring=yes: want auto, on or off"},
	{[]string{"--io-uring", "maybe", "a:b", "m"}, "--io-uring maybe: want auto, on or off"},
	{[]string{"-o", "lowerdir", "m"}, "lowerdir: needs a value"},
	{[]string{"-o", "frobnicate", "a:b", "m"}, "-o frobnicate: unknown mount option"},
	{[]string{"-o", "squash_to_root=1", "a:b", "m"}, "squash_to_root takes no value"},
	{[]string{"-o", "uidmapping=0:1000", "a:b", "m"}, "uidmapping=0:1000: want ID:MAPPED:COUNT"},
	{[]string{"-o", "gidmapping=", "a:b", "m"}, "gidmapping=: want ID:MAPPED:COUNT"},
	{[]string{"-o", "gidmapping=:", "a:b", "m"}, "gidmapping=:: want ID:MAPPED:COUNT"},
	{[]string{"-o", "gidmapping=0::1", "a:b", "m"}, `"" is not a number`},
	{[]string{"-o", "gidmapping=::0:1:1", "a:b", "m"}, "want ID:MAPPED:COUNT"},
	{[]string{"-o", "uidmapping=0:1000:1:", "a:b", "m"}, "want ID:MAPPED:COUNT"},
	{[]string{"-o", "uidmapping=0:-1:1", "a:b", "m"}, `"-1" is not a number`},
	{[]string{"-o", "gidmapping=0:4294967296:1", "a:b", "m"}, `"4294967296" is not a number`},
	{[]string{"-o", "uidmapping=0,1000,1", "a:b", "m"}, "want ID:MAPPED:COUNT"},
	{[]string{"-o", "uidmapping", "a:b", "m"}, "uidmapping: needs a value"},
	{[]string{"-o", "squash_to_uid=root", "a:b", "m"}, "squash_to_uid=root: want an id"},
	{[]string{"-o", "squash_to_gid=4294967295", "a:b", "m"}, "squash_to_gid=4294967295: want an id"},
	{[]string{"-o", "static_nlink=1", "a:b", "m"}, "static_nlink takes no value"},
	{[]string{"-o", "noacl=1", "a:b", "m"}, "noacl takes no value"},
	{[]string{"-o", "threaded=yes", "a:b", "m"}, "threaded=yes: want a number"},
	{[]string{"-o", "xattr_permissions=3", "a:b", "m"}, "xattr_permissions=3: want a number from 0 to 2"},
	{[]string{"-o", "metacopy=maybe", "a:b", "m"}, "metacopy=maybe"},
	{[]string{"-o", "whiteout_format=aufs", "a:b", "m"}, "-o whiteout_format=aufs: unknown whiteout format (want oci or overlay)"},
	{[]string{"--whiteout-format", "char", "a:b", "m"}, "--whiteout-format char: unknown whiteout format"},
	{[]string{"-o", "ro=1", "a:b", "m"}, "ro takes no value"},
	{[]string{"-o", "fsync=maybe", "a:b", "m"}, "fsync=maybe"},
	{[]string{"-o", "timeout=-1", "a:b", "m"}, "negative"},
	{[]string{"-o", "timeout=abc", "a:b", "m"}, "timeout=abc"},
	{[]string{"-o", "timeout=1e300", "a:b", "m"}, "at most"},
	{[]string{"--entry-timeout", "-1s", "a:b", "m"}, "negative"},
	{[]string{"--bogus", "a:b", "m"}, "unknown flag: --bogus"},
	{[]string{"-o"}, "flag needs an argument"},
	{[]string{"-o", "ro", "up", "m"}, "no read-only layer"},
}

// TestParseUsageErrors checks that bad syntax is a usage error whose text
// names the offending piece.
func TestParseUsageErrors(t *testing.T) {
	cases := usageErrorCases
	for _, c := range cases {
		_, err := parseArgs(c.args, 0)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", c.args, err)
			continue
		}
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("parseArgs(%q) = %q, want it to say %q", c.args, err, c.says)
		}
	}
}
