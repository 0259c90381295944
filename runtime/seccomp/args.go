package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// compareArg falls through when argument idx satisfies op against value
// (for MASKED_EQ: (arg & value) == valueTwo) and jumps to fail otherwise.
// A 64-bit argument is compared as two 32-bit words, high word first.
func (c *compiler) compareArg(s *arch, idx uint, op specs.LinuxSeccompOperator, value, valueTwo uint64, fail label) {
	lo := uint32(offArgs + 8*idx)
	if s.bits32 {
		c.compare32(lo, op, value, valueTwo, fail)
		return
	}
	a := &c.a
	hi := lo + 4
	hv, lv := uint32(value>>32), uint32(value)
	pass := a.newLabel()
	switch op {
	case specs.OpEqualTo:
		a.load(hi)
		a.jump(unix.BPF_JEQ, hv, next, fail)
		a.load(lo)
		a.jump(unix.BPF_JEQ, lv, next, fail)
	case specs.OpNotEqual:
		a.load(hi)
		a.jump(unix.BPF_JEQ, hv, next, pass)
		a.load(lo)
		a.jump(unix.BPF_JEQ, lv, fail, next)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		a.load(hi)
		a.jump(unix.BPF_JGT, hv, pass, next)
		a.jump(unix.BPF_JEQ, hv, next, fail)
		a.load(lo)
		a.jump(loJump(op), lv, next, fail)
	case specs.OpLessThan, specs.OpLessEqual:
		// a < v is !(a >= v); a <= v is !(a > v).
		a.load(hi)
		a.jump(unix.BPF_JGT, hv, fail, next)
		a.jump(unix.BPF_JEQ, hv, next, pass)
		a.load(lo)
		a.jump(loJump(op), lv, fail, next)
	case specs.OpMaskedEqual:
		hd, ld := uint32(valueTwo>>32), uint32(valueTwo)
		a.load(hi)
		a.and(hv)
		a.jump(unix.BPF_JEQ, hd, next, fail)
		a.load(lo)
		a.and(lv)
		a.jump(unix.BPF_JEQ, ld, next, fail)
	}
	a.bind(pass)
}

// loJump is the low-word compare of an ordering operator.
func loJump(op specs.LinuxSeccompOperator) uint16 {
	switch op {
	case specs.OpGreaterEqual, specs.OpLessThan:
		return unix.BPF_JGE
	}
	return unix.BPF_JGT
}

// compare32 compares the argument of a 32-bit ABI, whose arguments are 32
// bits wide: only the low word is looked at (as libseccomp does), and a
// value with high bits set decides the comparison by itself.
func (c *compiler) compare32(lo uint32, op specs.LinuxSeccompOperator, value, valueTwo uint64, fail label) {
	a := &c.a
	big := value>>32 != 0
	lv := uint32(value)
	switch op {
	case specs.OpEqualTo, specs.OpNotEqual:
		if big {
			if op == specs.OpEqualTo {
				a.goTo(fail)
			}
			return
		}
		a.load(lo)
		if op == specs.OpEqualTo {
			a.jump(unix.BPF_JEQ, lv, next, fail)
		} else {
			a.jump(unix.BPF_JEQ, lv, fail, next)
		}
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		if big {
			a.goTo(fail)
			return
		}
		a.load(lo)
		a.jump(loJump(op), lv, next, fail)
	case specs.OpLessThan, specs.OpLessEqual:
		if big {
			return
		}
		a.load(lo)
		a.jump(loJump(op), lv, fail, next)
	case specs.OpMaskedEqual:
		if valueTwo>>32 != 0 {
			a.goTo(fail)
			return
		}
		a.load(lo)
		a.and(lv)
		a.jump(unix.BPF_JEQ, uint32(valueTwo), next, fail)
	}
}
