package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The kernel is the oracle: a child process (this test binary, re-run)
// installs the compiled filter and makes the calls it is given; the errnos
// it reports are what the kernel decided.

const childEnv = "SECCOMP_TEST_CHILD"

type kernelCall struct {
	Nr   uintptr
	Args [6]uintptr
}

type childRequest struct {
	Config *specs.LinuxSeccomp
	Calls  []kernelCall
}

type childReply struct {
	Errnos          []uintptr
	Status          string // the Seccomp: line of the thread's status after install
	Tasks, Filtered int    // threads of the child, and those in filter mode
	Failure         string
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

func childMain() int {
	var req childRequest
	var reply childReply
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		reply.Failure = err.Error()
	} else if err := childCalls(&req, &reply); err != nil {
		reply.Failure = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(&reply)
	return 0
}

func childCalls(req *childRequest, reply *childReply) error {
	goruntime.LockOSThread() // the filter is on this thread only
	f, err := Compile(req.Config)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := f.Install(); err != nil {
		return err
	}
	for _, c := range req.Calls {
		_, _, e := unix.RawSyscall6(c.Nr, c.Args[0], c.Args[1], c.Args[2], c.Args[3], c.Args[4], c.Args[5])
		reply.Errnos = append(reply.Errnos, uintptr(e))
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", unix.Gettid()))
	if err != nil {
		return err
	}
	reply.Status = seccompLine(data)
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		return err
	}
	for _, p := range tasks {
		if data, err := os.ReadFile(p); err == nil {
			reply.Tasks++
			if seccompLine(data) == "Seccomp: 2" {
				reply.Filtered++
			}
		}
	}
	return nil
}

func seccompLine(status []byte) string {
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Seccomp:") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}

// inKernel runs calls under the filter compiled from s in a child.
func inKernel(t *testing.T, s *specs.LinuxSeccomp, calls []kernelCall) childReply {
	t.Helper()
	req, _ := json.Marshal(childRequest{Config: s, Calls: calls})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = bytes.NewReader(req)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	var reply childReply
	if err := json.Unmarshal(out, &reply); err != nil {
		t.Fatalf("child reply %q: %v", out, err)
	}
	if reply.Failure != "" {
		t.Fatalf("child: %s", reply.Failure)
	}
	if len(reply.Errnos) != len(calls) {
		t.Fatalf("child made %d of %d calls", len(reply.Errnos), len(calls))
	}
	return reply
}

func nativeArch(t *testing.T) *arch {
	archs, ok := nativeArches[goruntime.GOARCH]
	if !ok {
		t.Skipf("no seccomp support on %s", goruntime.GOARCH)
	}
	return archs[0]
}

// argCalls are calls that take no arguments and never fail: one per
// operator, so that one child checks them all.
var argCalls = []string{"getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "gettid"}

// TestKernelAgreesOnArgumentChecks: for every operator and several values,
// the kernel refuses a call with argument 3 set exactly when the rule
// says so.
func TestKernelAgreesOnArgumentChecks(t *testing.T) {
	native := nativeArch(t)
	for _, v := range []uint64{10, 0xffffffff, 1<<32 | 10, 0x12345678_9abcdef0} {
		s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		for i, op := range allOps {
			arg := specs.LinuxSeccompArg{Index: 3, Value: v, Op: op}
			if op == specs.OpMaskedEqual {
				arg.ValueTwo = v & 0x0000ffff_0000ffff
			}
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{argCalls[i]}, Action: specs.ActErrno,
				ErrnoRet: errnoPtr(uint(unix.E2BIG)), Args: []specs.LinuxSeccompArg{arg}})
		}
		var calls []kernelCall
		var data []*seccompData
		for i := range allOps {
			nr := native.nrs[argCalls[i]]
			for _, a := range argValues {
				calls = append(calls, kernelCall{Nr: uintptr(nr), Args: [6]uintptr{3: uintptr(a)}})
				data = append(data, &seccompData{nr: nr, arch: native.audit, args: [6]uint64{3: a}})
			}
		}
		reply := inKernel(t, s, calls)
		for i, d := range data {
			want, _ := reference(s, goruntime.GOARCH, d)
			denied := reply.Errnos[i] == uintptr(unix.E2BIG)
			if denied != (want != unix.SECCOMP_RET_ALLOW) || (!denied && reply.Errnos[i] != 0) {
				t.Errorf("%s(arg3 %#x) under %s: kernel errno %d, rules say %#x", argCalls[i/len(argValues)], d.args[3], s.Syscalls[i/len(argValues)].Args[0].Op, reply.Errnos[i], want)
			}
		}
	}
}

// TestKernelRuleOrder: ANDed conditions, rules tried in order, then the
// unconditional one; several conditions on one argument are ORed (runc).
func TestKernelRuleOrder(t *testing.T) {
	native := nativeArch(t)
	getpid := uintptr(native.nrs["getpid"])
	flags := []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: flags, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(5), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}, {Index: 5, Value: 10, Op: specs.OpGreaterThan}}},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(6), Args: []specs.LinuxSeccompArg{{Index: 1, Value: 7, Op: specs.OpEqualTo}, {Index: 1, Value: 8, Op: specs.OpEqualTo}}},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(9)},
		{Names: []string{"getppid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 3, Op: specs.OpEqualTo}}},
	}}
	cases := []struct {
		args [6]uintptr
		want uintptr
	}{
		{[6]uintptr{0: 1, 5: 11}, 5},
		{[6]uintptr{0: 1, 5: 10}, 9},
		{[6]uintptr{0: 2, 5: 11}, 9},
		{[6]uintptr{0: 1, 1: 7, 5: 11}, 5},
		{[6]uintptr{1: 7}, 6},
		{[6]uintptr{1: 8}, 6},
		{[6]uintptr{1: 9}, 9},
	}
	var calls []kernelCall
	for _, c := range cases {
		calls = append(calls, kernelCall{Nr: getpid, Args: c.args})
	}
	reply := inKernel(t, s, calls)
	for i, c := range cases {
		if reply.Errnos[i] != c.want {
			t.Errorf("getpid%v: errno %d, want %d", c.args, reply.Errnos[i], c.want)
		}
	}
	// TSYNC put the filter on every thread (the Go runtime has several).
	if reply.Tasks < 2 || reply.Filtered != reply.Tasks {
		t.Errorf("with TSYNC, %d of %d threads are filtered", reply.Filtered, reply.Tasks)
	}
}

// TestKernelDockerDefault: docker's default profile in a process without
// CAP_SYS_ADMIN in its bounding set: the escapes are refused, the ordinary
// calls work, and the process reports filter mode.
func TestKernelDockerDefault(t *testing.T) {
	native := nativeArch(t)
	s, err := Default([]string{"CAP_CHOWN", "CAP_SETUID"})
	if err != nil {
		t.Fatal(err)
	}
	nr := func(name string) uintptr { return uintptr(native.nrs[name]) }
	cases := []struct {
		name string
		call kernelCall
		want unix.Errno
	}{
		{"getpid", kernelCall{Nr: nr("getpid")}, 0},
		{"unshare(CLONE_NEWUSER)", kernelCall{Nr: nr("unshare"), Args: [6]uintptr{unix.CLONE_NEWUSER}}, unix.EPERM},
		{"mount", kernelCall{Nr: nr("mount")}, unix.EPERM},
		{"keyctl", kernelCall{Nr: nr("keyctl")}, unix.EPERM},
		{"personality(ADDR_NO_RANDOMIZE)", kernelCall{Nr: nr("personality"), Args: [6]uintptr{0x0040000}}, unix.EPERM},
		{"personality(query)", kernelCall{Nr: nr("personality"), Args: [6]uintptr{0xffffffff}}, 0},
		{"clone3", kernelCall{Nr: nr("clone3")}, unix.ENOSYS},
		{"a call newer than the profile", kernelCall{Nr: 1000}, unix.ENOSYS},
	}
	var calls []kernelCall
	for _, c := range cases {
		calls = append(calls, c.call)
	}
	reply := inKernel(t, s, calls)
	for i, c := range cases {
		if unix.Errno(reply.Errnos[i]) != c.want {
			t.Errorf("%s: errno %d (%v), want %v", c.name, reply.Errnos[i], unix.Errno(reply.Errnos[i]), c.want)
		}
	}
	if reply.Status != "Seccomp: 2" {
		t.Errorf("status after install: %q, want Seccomp: 2", reply.Status)
	}
	// Without TSYNC the filter is on the calling thread only, which execs.
	if reply.Filtered != 1 || reply.Tasks < 2 {
		t.Errorf("without TSYNC, %d of %d threads are filtered", reply.Filtered, reply.Tasks)
	}
}
