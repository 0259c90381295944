package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Filter is a compiled seccomp program and the flags to load it with.
type Filter struct {
	Prog  []unix.SockFilter
	Flags uint
}

// Compile turns a runtime-spec seccomp config into a BPF program for this
// machine's architecture, with libseccomp's (and so runc's) semantics:
// rules of one syscall are tried in order, conditional ones first; the
// conditions of a rule are ANDed, except that several conditions on one
// argument make one rule each (ORed), as runc does. Unknown syscall names
// are skipped. Anything the filter could not honour is an error naming the
// field: notify actions and listeners (no support for them), unknown
// actions, operators, flags or architectures.
func Compile(s *specs.LinuxSeccomp) (*Filter, error) {
	return compile(s, nativeGOARCH())
}

func compile(s *specs.LinuxSeccomp, goarch string) (*Filter, error) {
	if s == nil {
		return nil, fmt.Errorf("no seccomp config")
	}
	if s.ListenerPath != "" || s.ListenerMetadata != "" {
		return nil, fmt.Errorf("listenerPath: seccomp user notification is not supported")
	}
	if s.DefaultAction == "" {
		return nil, fmt.Errorf("defaultAction is missing")
	}
	def, err := actionValue(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	flags, err := filterFlags(s.Flags)
	if err != nil {
		return nil, err
	}
	rules, err := parseRules(s.Syscalls)
	if err != nil {
		return nil, err
	}
	sections, err := sectionsFor(goarch, s.Architectures)
	if err != nil {
		return nil, err
	}
	c := &compiler{def: def, listed: s.Architectures}
	prog, err := c.program(sections, rules)
	if err != nil {
		return nil, err
	}
	return &Filter{Prog: prog, Flags: flags}, nil
}

// actionValue is the filter's return value for an action.
func actionValue(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	var v uint32
	switch a {
	case specs.ActKill, specs.ActKillThread:
		v = unix.SECCOMP_RET_KILL_THREAD
	case specs.ActKillProcess:
		v = unix.SECCOMP_RET_KILL_PROCESS
	case specs.ActTrap:
		v = unix.SECCOMP_RET_TRAP
	case specs.ActAllow:
		v = unix.SECCOMP_RET_ALLOW
	case specs.ActLog:
		v = unix.SECCOMP_RET_LOG
	case specs.ActErrno, specs.ActTrace:
		// The errno (for TRACE the tracer's message) defaults to EPERM,
		// as in runc.
		data := uint(unix.EPERM)
		if errnoRet != nil {
			data = *errnoRet
		}
		if a == specs.ActErrno && data > 4095 {
			return 0, fmt.Errorf("errno %d is out of range (at most 4095)", data)
		}
		if data > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("trace message %d is out of range (at most 65535)", data)
		}
		base := uint32(unix.SECCOMP_RET_ERRNO)
		if a == specs.ActTrace {
			base = unix.SECCOMP_RET_TRACE
		}
		return base | uint32(data), nil
	case specs.ActNotify:
		return 0, fmt.Errorf("%s: seccomp user notification is not supported", a)
	default:
		return 0, fmt.Errorf("unknown action %q", a)
	}
	if errnoRet != nil {
		return 0, fmt.Errorf("an errno return is only possible with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not %s", a)
	}
	return v, nil
}

// filterFlags maps the flags we can honour; the others need a listener.
func filterFlags(names []specs.LinuxSeccompFlag) (uint, error) {
	var flags uint
	for i, f := range names {
		switch f {
		case specs.LinuxSeccompFlagLog:
			flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_TSYNC":
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC
		case specs.LinuxSeccompFlagWaitKillableRecv:
			return 0, fmt.Errorf("flags[%d]: %s needs seccomp user notification, which is not supported", i, f)
		default:
			return 0, fmt.Errorf("flags[%d]: unknown flag %q", i, f)
		}
	}
	return flags, nil
}

// rule is one checked syscalls[] entry (or one part of a split one).
type rule struct {
	index int // in syscalls[]
	names []string
	ret   uint32
	args  []specs.LinuxSeccompArg
}

// parseRules checks the syscalls entries and turns them into rules.
func parseRules(calls []specs.LinuxSyscall) ([]rule, error) {
	var out []rule
	for i, call := range calls {
		if len(call.Names) == 0 {
			return nil, fmt.Errorf("syscalls[%d].names is empty", i)
		}
		ret, err := actionValue(call.Action, call.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d].action: %w", i, err)
		}
		seen := map[uint]bool{}
		split := false
		for j, arg := range call.Args {
			if err := checkArg(arg); err != nil {
				return nil, fmt.Errorf("syscalls[%d].args[%d]: %w", i, j, err)
			}
			split = split || seen[arg.Index]
			seen[arg.Index] = true
		}
		if !split {
			out = append(out, rule{index: i, names: call.Names, ret: ret, args: call.Args})
			continue
		}
		// Several conditions on one argument: runc adds each as a rule
		// of its own.
		for _, arg := range call.Args {
			out = append(out, rule{index: i, names: call.Names, ret: ret, args: []specs.LinuxSeccompArg{arg}})
		}
	}
	return out, nil
}

func checkArg(arg specs.LinuxSeccompArg) error {
	if arg.Index > 5 {
		return fmt.Errorf("index %d: a syscall has 6 arguments (0-5)", arg.Index)
	}
	switch arg.Op {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan:
		if arg.ValueTwo != 0 {
			return fmt.Errorf("valueTwo is only used by %s, not %s", specs.OpMaskedEqual, arg.Op)
		}
	case specs.OpMaskedEqual:
	default:
		return fmt.Errorf("op: unknown operator %q", arg.Op)
	}
	return nil
}
