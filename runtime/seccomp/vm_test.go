package seccomp

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The kernel tests (kernel_test.go) check compiled filters where the
// kernel runs them: native calls only. run and reference cover the rest
// (32-bit and x32 sections, odd argument values) and let the fuzz target
// compare every compiled filter with the rules it came from.

// seccompData is struct seccomp_data.
type seccompData struct {
	nr, arch uint32
	args     [6]uint64
}

func (d *seccompData) word(off uint32) (uint32, error) {
	switch {
	case off == offNr:
		return d.nr, nil
	case off == offArch:
		return d.arch, nil
	case off >= offArgs && off < offArgs+48 && off%4 == 0:
		a := d.args[(off-offArgs)/8]
		if (off-offArgs)%8 == 4 {
			return uint32(a >> 32), nil
		}
		return uint32(a), nil
	}
	return 0, fmt.Errorf("load of offset %d", off)
}

// run interprets the instructions the compiler emits, as the kernel would.
func run(prog []unix.SockFilter, d *seccompData) (uint32, error) {
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			w, err := d.word(in.K)
			if err != nil {
				return 0, fmt.Errorf("pc %d: %v", pc, err)
			}
			acc = w
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			var ok bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				ok = acc == in.K
			case unix.BPF_JGT:
				ok = acc > in.K
			default:
				ok = acc >= in.K
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("the program ran off its end")
}

// reference is what the config means for one call, computed from the
// rules directly: the specification the compiled filter must meet.
func reference(s *specs.LinuxSeccomp, goarch string, d *seccompData) (uint32, error) {
	ref, err := newReference(s, goarch)
	if err != nil {
		return 0, err
	}
	return ref(d), nil
}

// newReference parses the config once for many reference verdicts.
func newReference(s *specs.LinuxSeccomp, goarch string) (func(*seccompData) uint32, error) {
	def, err := actionValue(s.DefaultAction, s.DefaultErrnoRet)
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
	return func(d *seccompData) uint32 { return verdict(def, s.Architectures, rules, sections, d) }, nil
}

func verdict(def uint32, listed []specs.Arch, rules []rule, sections []*arch, d *seccompData) uint32 {
	var sec *arch
	for _, a := range sections {
		if a.audit == d.arch && a.x32 == (a.audit == unix.AUDIT_ARCH_X86_64 && d.nr >= x32Bit) {
			sec = a
		}
	}
	if sec == nil {
		return retBadArch
	}
	known, max := false, uint32(0)
	var conds []rule
	var uncond *uint32
	for _, r := range rules {
		for _, name := range r.names {
			nr, ok := sec.nrs[name]
			if !ok {
				continue
			}
			known, max = true, maxU32(max, nr)
			if nr != d.nr {
				continue
			}
			if len(r.args) > 0 {
				conds = append(conds, r)
			} else if uncond == nil {
				v := r.ret
				uncond = &v
			}
		}
	}
	stub := def&unix.SECCOMP_RET_ACTION_FULL != unix.SECCOMP_RET_ALLOW && def != unix.SECCOMP_RET_LOG &&
		def&unix.SECCOMP_RET_ACTION_FULL != unix.SECCOMP_RET_TRACE && slices.Contains(listed, sec.name)
	if known && d.nr > max && stub {
		return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	for _, r := range conds {
		if matches(r, sec, d) {
			return r.ret
		}
	}
	if uncond != nil {
		return *uncond
	}
	return def
}

func matches(r rule, sec *arch, d *seccompData) bool {
	for _, c := range r.args {
		a := d.args[c.Index]
		if sec.bits32 {
			a = uint64(uint32(a))
		}
		var ok bool
		switch c.Op {
		case specs.OpEqualTo:
			ok = a == c.Value
		case specs.OpNotEqual:
			ok = a != c.Value
		case specs.OpLessThan:
			ok = a < c.Value
		case specs.OpLessEqual:
			ok = a <= c.Value
		case specs.OpGreaterThan:
			ok = a > c.Value
		case specs.OpGreaterEqual:
			ok = a >= c.Value
		case specs.OpMaskedEqual:
			ok = a&c.Value == c.ValueTwo
		}
		if !ok {
			return false
		}
	}
	return true
}
