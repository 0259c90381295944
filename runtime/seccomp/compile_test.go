package seccomp

import (
	"encoding/json"
	"math/rand"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// argValues are the argument values worth trying: word boundaries, and
// values whose words equal one word of another.
var argValues = []uint64{
	0, 1, 2, 8, 10, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
	1 << 32, 1<<32 | 1, 1<<32 | 10, 0xffffffff_00000000, 0xffffffff_ffffffff,
	0x12345678_9abcdef0, 0x12345678_9abcdeef, 0x12345678_9abcdef1, 0x12345677_9abcdef0, 0x12345679_9abcdef0,
	0x7e020000, 0x00020000, 0x00020008,
}

var allOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

func errnoPtr(e uint) *uint { return &e }

// checkAgainstReference runs the compiled filter on many calls of every
// ABI and compares each verdict with the reference.
func checkAgainstReference(t *testing.T, s *specs.LinuxSeccomp, goarch string, rnd *rand.Rand, samples int) {
	t.Helper()
	f, err := compile(s, goarch)
	if err != nil {
		t.Fatalf("compile for %s: %v", goarch, err)
	}
	ref, err := newReference(s, goarch)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range nativeArches[goarch] {
		var nrs []uint32
		for _, nr := range sec.nrs {
			nrs = append(nrs, nr)
		}
		nrs = append(nrs, 0, 1, 0xffffffff, x32Bit-1, x32Bit, x32Bit|600, 9999)
		for i := 0; i < samples; i++ {
			d := &seccompData{nr: nrs[rnd.Intn(len(nrs))], arch: sec.audit}
			if rnd.Intn(50) == 0 {
				d.arch = unix.AUDIT_ARCH_MIPS
			}
			for j := range d.args {
				d.args[j] = argValues[rnd.Intn(len(argValues))]
				if rnd.Intn(4) == 0 {
					d.args[j] = rnd.Uint64() >> uint(rnd.Intn(64))
				}
			}
			got, err := run(f.Prog, d)
			if err != nil {
				t.Fatalf("%s: run: %v", goarch, err)
			}
			if want := ref(d); got != want {
				t.Fatalf("%s: call %+v: filter returns %#x, the rules say %#x", goarch, *d, got, ref(d))
			}
		}
	}
}

func TestCompiledFilterFollowsTheRules(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	dflt, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	dfltAdmin, err := Default([]string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"})
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string]*specs.LinuxSeccomp{"docker default": dflt, "docker default with CAP_SYS_ADMIN": dfltAdmin}
	// One rule per operator and value, on argument 3 of getpid.
	for _, op := range allOps {
		for _, v := range []uint64{0, 10, 0xffffffff, 1 << 32, 0x12345678_9abcdef0} {
			configs["getpid "+string(op)] = &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32, specs.ArchARM},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(7),
					Args: []specs.LinuxSeccompArg{{Index: 3, Value: v, ValueTwo: v & 0xf0f0f0f0_f0f0f0f0 * boolU64(op == specs.OpMaskedEqual), Op: op}}}},
			}
		}
	}
	configs["mixed"] = &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoPtr(1),
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchAARCH64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "getpid", "no_such_call"}, Action: specs.ActAllow},
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(97), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 10, Op: specs.OpEqualTo}}},
			{Names: []string{"socket"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}, {Index: 0, Value: 0, Op: specs.OpEqualTo}}},
			{Names: []string{"kill"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 100, Op: specs.OpGreaterThan}, {Index: 1, Value: 9, Op: specs.OpNotEqual}}},
			{Names: []string{"mmap"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 4, ValueTwo: 4, Op: specs.OpMaskedEqual}}},
			{Names: []string{"clone"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x10000000, ValueTwo: 0x10000000, Op: specs.OpMaskedEqual}}},
			{Names: []string{"clone"}, Action: specs.ActAllow},
		},
	}
	// Two rules without conditions for one call: the first wins, as under
	// runc with libseccomp 2.5 (podman's default profile allows setns,
	// then denies it to containers without CAP_SYS_ADMIN).
	configs["first unconditional wins"] = &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoPtr(38),
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"setns", "getpid"}, Action: specs.ActAllow},
			{Names: []string{"setns", "mkdir"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(1)},
			{Names: []string{"mkdir"}, Action: specs.ActKillProcess},
		},
	}
	for name, s := range configs {
		for _, goarch := range []string{"amd64", "arm64", "386", "arm"} {
			t.Run(name+"/"+goarch, func(t *testing.T) {
				checkAgainstReference(t, s, goarch, rnd, 3000)
			})
		}
	}
}

func boolU64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// TestDefaultProfileShape checks docker's default on this machine: calls
// a container must not make are refused, ordinary ones allowed.
func TestDefaultProfileShape(t *testing.T) {
	s, err := Default([]string{"CAP_CHOWN", "CAP_NET_RAW"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := compile(s, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	// The kernel takes 4096 instructions at most; docker's profile must
	// stay well below, with room for larger custom ones.
	t.Logf("docker's default profile: %d BPF instructions", len(f.Prog))
	if len(f.Prog) > maxInsns/2 {
		t.Errorf("docker's default profile takes %d BPF instructions", len(f.Prog))
	}
	call := func(name string, args ...uint64) uint32 {
		d := &seccompData{nr: sysX86_64[name], arch: unix.AUDIT_ARCH_X86_64}
		copy(d.args[:], args)
		v, err := run(f.Prog, d)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	for _, c := range []struct {
		name string
		args []uint64
		want uint32
	}{
		{"read", nil, unix.SECCOMP_RET_ALLOW},
		{"execve", nil, unix.SECCOMP_RET_ALLOW},
		{"unshare", []uint64{unix.CLONE_NEWUSER}, eperm},
		{"mount", nil, eperm},
		{"keyctl", nil, eperm},
		{"add_key", nil, eperm},
		{"bpf", nil, eperm},
		{"personality", []uint64{0}, unix.SECCOMP_RET_ALLOW},
		{"personality", []uint64{0xffffffff}, unix.SECCOMP_RET_ALLOW},
		{"personality", []uint64{0x0040000}, eperm}, // ADDR_NO_RANDOMIZE
		{"clone", []uint64{uint64(unix.SIGCHLD)}, unix.SECCOMP_RET_ALLOW},
		{"clone", []uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, eperm},
		{"clone3", nil, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"socket", []uint64{unix.AF_VSOCK}, eperm},
		{"socket", []uint64{unix.AF_INET}, unix.SECCOMP_RET_ALLOW},
	} {
		if got := call(c.name, c.args...); got != c.want {
			t.Errorf("%s%v: %#x, want %#x", c.name, c.args, got, c.want)
		}
	}
	// x32 calls are filtered by the x32 section, not passed as x86_64.
	d := &seccompData{nr: x32Bit | sysX86_64["unshare"], arch: unix.AUDIT_ARCH_X86_64}
	if v, _ := run(f.Prog, d); v != eperm {
		t.Errorf("x32 unshare: %#x, want EPERM", v)
	}
	// x32's execve is its own number (520); 59, x86_64's, is none in x32.
	for nr, want := range map[uint32]uint32{x32Bit | 520: unix.SECCOMP_RET_ALLOW, x32Bit | 59: eperm} {
		d := &seccompData{nr: nr, arch: unix.AUDIT_ARCH_X86_64}
		if v, _ := run(f.Prog, d); v != want {
			t.Errorf("x32 call %#x: %#x, want %#x", nr, v, want)
		}
	}
}

// TestEnosysForNewerCalls: as runc, calls numbered above every call the
// config names get ENOSYS (programs then fall back to older calls), for
// the architectures the config lists and a default that refuses.
func TestEnosysForNewerCalls(t *testing.T) {
	getpid := sysX86_64["getpid"]
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	for _, c := range []struct {
		def    specs.LinuxSeccompAction
		arches []specs.Arch
		want   uint32
	}{
		{specs.ActErrno, []specs.Arch{specs.ArchX86_64}, enosys},
		{specs.ActKillProcess, []specs.Arch{specs.ArchX86_64}, enosys},
		{specs.ActErrno, nil, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{specs.ActErrno, []specs.Arch{specs.ArchX86}, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{specs.ActLog, []specs.Arch{specs.ArchX86_64}, unix.SECCOMP_RET_LOG},
		{specs.ActTrace, []specs.Arch{specs.ArchX86_64}, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
	} {
		s := &specs.LinuxSeccomp{DefaultAction: c.def, Architectures: c.arches,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow}}}
		f, err := compile(s, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		for nr, want := range map[uint32]uint32{getpid + 1: c.want, getpid: unix.SECCOMP_RET_ALLOW} {
			if got, _ := run(f.Prog, &seccompData{nr: nr, arch: unix.AUDIT_ARCH_X86_64}); got != want {
				t.Errorf("default %s, architectures %v: call %d: %#x, want %#x", c.def, c.arches, nr, got, want)
			}
		}
	}
}

func TestCompileRefusesWhatItCannotHonour(t *testing.T) {
	ok := specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActAllow}
	cases := []struct {
		name string
		s    specs.LinuxSeccomp
		want string
	}{
		{"no default", specs.LinuxSeccomp{}, "defaultAction is missing"},
		{"bad default", specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}, `defaultAction: unknown action "SCMP_ACT_MAYBE"`},
		{"notify default", specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, "defaultAction: SCMP_ACT_NOTIFY: seccomp user notification is not supported"},
		{"listener", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"}, "listenerPath: seccomp user notification is not supported"},
		{"unknown flag", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FOO"}}, `flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FOO"`},
		{"killable recv", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}}, "flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs seccomp user notification"},
		{"unknown arch", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, `architectures[0]: unknown architecture "SCMP_ARCH_Z80"`},
		{"no names", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{ok, {Action: specs.ActErrno}}}, "syscalls[1].names is empty"},
		{"bad action", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: "SCMP_ACT_NOPE"}}}, `syscalls[0].action: unknown action "SCMP_ACT_NOPE"`},
		{"notify rule", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}, "syscalls[0].action: SCMP_ACT_NOTIFY: seccomp user notification is not supported"},
		{"errno with allow", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActKillProcess, ErrnoRet: errnoPtr(1)}}}, "syscalls[0].action: an errno return is only possible with SCMP_ACT_ERRNO"},
		{"errno range", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoPtr(5000)}, "defaultAction: errno 5000 is out of range"},
		{"bad op", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_LIKE"}}}}}, `syscalls[0].args[0]: op: unknown operator "SCMP_CMP_LIKE"`},
		{"bad index", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, "syscalls[0].args[0]: index 6"},
		{"valueTwo", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, ValueTwo: 3, Op: specs.OpEqualTo}}}}}, "syscalls[0].args[0]: valueTwo is only used by SCMP_CMP_MASKED_EQ"},
	}
	for _, c := range cases {
		s := c.s
		_, err := compile(&s, "amd64")
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", c.name, err, c.want)
		}
	}
	// Unknown names are skipped, as libseccomp and runc do: a profile
	// may name calls of other architectures or newer kernels.
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"no_such_call"}, Action: specs.ActErrno}}}
	if _, err := compile(s, "amd64"); err != nil {
		t.Errorf("unknown syscall name: %v", err)
	}
}

func TestFromDocker(t *testing.T) {
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
		"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
		{"names":["chmod"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}},
		{"names":["chown"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_CHOWN"]}}]}`
	s, err := FromDocker([]byte(profile), []string{"CAP_CHOWN"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Syscalls) != 1 || s.Syscalls[0].Names[1] != "mkdirat" || len(s.Architectures) != 3 {
		t.Errorf("resolved profile: %+v", s)
	}
	for _, c := range []struct{ profile, want string }{
		{`{"defaultAction":"SCMP_ACT_BOGUS"}`, `defaultAction: unknown action "SCMP_ACT_BOGUS"`},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[null]}`, "syscalls[0] is null"},
		{`{"defaultAction":`, "not a seccomp profile"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL_LATER"}]}`, `syscalls[0].action: unknown action "SCMP_ACT_KILL_LATER"`},
	} {
		if _, err := FromDocker([]byte(c.profile), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.profile, err, c.want)
		}
	}
	// Neither default action nor rules: no filter, as docker.
	if s, err := FromDocker([]byte(`{}`), nil); s != nil || err != nil {
		t.Errorf("empty profile: %v %v", s, err)
	}
}

func FuzzProfile(f *testing.F) {
	dflt, _ := Default(nil)
	seed, _ := json.Marshal(dflt)
	f.Add(seed)
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["socket","getpid"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":10,"op":"SCMP_CMP_NE"},{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_LE"}]}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"clone","action":"SCMP_ACT_TRACE","errnoRet":5,"args":[{"index":1,"value":4294967296,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := FromDocker(data, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"})
		if err != nil || s == nil {
			return
		}
		rnd := rand.New(rand.NewSource(int64(len(data))))
		for _, goarch := range []string{"amd64", "arm64", "386"} {
			if _, err := compile(s, goarch); err != nil {
				// Limits (program length, conflicts) may depend on
				// the ABIs; they must be errors, never panics.
				continue
			}
			checkAgainstReference(t, s, goarch, rnd, 50)
		}
	})
}
