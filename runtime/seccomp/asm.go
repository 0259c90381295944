package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// asm assembles classic BPF with symbolic jump targets. Conditional jumps
// reach at most 255 instructions ahead; the compiler keeps them short and
// uses ja (32-bit offsets) for far targets.
type asm struct {
	prog   []insn
	labels []int // label -> instruction index, -1 until bound
}

// label is a jump target; next is the following instruction.
type label int

const next label = -1

type insn struct {
	f      unix.SockFilter
	jt, jf label // conditional jumps
	ja     label // unconditional jump (BPF_JA)
}

func (a *asm) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

func (a *asm) bind(l label) { a.labels[l] = len(a.prog) }

// load loads the 32-bit word at off in struct seccomp_data.
func (a *asm) load(off uint32) {
	a.prog = append(a.prog, insn{f: unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}, jt: next, jf: next, ja: next})
}

// and masks the accumulator.
func (a *asm) and(k uint32) {
	a.prog = append(a.prog, insn{f: unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: k}, jt: next, jf: next, ja: next})
}

// jump compares the accumulator with k (op is BPF_JEQ, BPF_JGT or BPF_JGE).
func (a *asm) jump(op uint16, k uint32, jt, jf label) {
	a.prog = append(a.prog, insn{f: unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k}, jt: jt, jf: jf, ja: next})
}

func (a *asm) goTo(l label) {
	a.prog = append(a.prog, insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, jt: next, jf: next, ja: l})
}

func (a *asm) ret(v uint32) {
	a.prog = append(a.prog, insn{f: unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: v}, jt: next, jf: next, ja: next})
}

// maxInsns is the kernel's limit on a filter's length (BPF_MAXINSNS).
const maxInsns = 4096

// assemble resolves the labels.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	if len(a.prog) > maxInsns {
		return nil, fmt.Errorf("the filter needs %d BPF instructions, more than the kernel's limit of %d", len(a.prog), maxInsns)
	}
	out := make([]unix.SockFilter, len(a.prog))
	for i, in := range a.prog {
		f := in.f
		off := func(l label) (int, error) {
			if l == next {
				return 0, nil
			}
			t := a.labels[l]
			if t <= i {
				return 0, fmt.Errorf("internal error: BPF jump from %d to %d is not forward", i, t)
			}
			return t - i - 1, nil
		}
		if f.Code&0x07 == unix.BPF_JMP && f.Code&0xf0 == unix.BPF_JA {
			o, err := off(in.ja)
			if err != nil {
				return nil, err
			}
			f.K = uint32(o)
		} else if f.Code&0x07 == unix.BPF_JMP {
			t, err := off(in.jt)
			if err != nil {
				return nil, err
			}
			e, err := off(in.jf)
			if err != nil {
				return nil, err
			}
			if t > 255 || e > 255 {
				return nil, fmt.Errorf("internal error: BPF conditional jump at %d is too long", i)
			}
			f.Jt, f.Jf = uint8(t), uint8(e)
		}
		out[i] = f
	}
	return out, nil
}
