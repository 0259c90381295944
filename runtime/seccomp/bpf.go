package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data (linux/seccomp.h). Arguments are 64-bit
// little-endian words: the low half first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// retBadArch is what a call from an ABI without a section gets:
// libseccomp's default bad-arch action.
const retBadArch = unix.SECCOMP_RET_KILL_THREAD

// chunk is how many syscall compares share one set of return and jump
// instructions, keeping conditional jumps within their 255-instruction
// reach.
const chunk = 100

type compiler struct {
	def    uint32
	listed []specs.Arch // the config's architectures
	a      asm
}

// group is what one syscall number does in one section.
type group struct {
	nr     uint32
	conds  []rule  // rules with argument conditions, in order
	uncond *uint32 // the unconditional rule's return value, if any
	block  label
}

// program lays out the filter: dispatch on the ABI, then per ABI a chain
// of syscall number compares and the argument checks.
func (c *compiler) program(sections []*arch, rules []rule) ([]unix.SockFilter, error) {
	groups := make([][]*group, len(sections))
	starts := make([]label, len(sections))
	var x32 label = next
	for i, s := range sections {
		g, err := groupRules(s, rules)
		if err != nil {
			return nil, err
		}
		groups[i], starts[i] = g, c.a.newLabel()
		if s.x32 {
			x32 = starts[i]
		}
	}
	a := &c.a
	a.load(offArch)
	for i, s := range sections {
		if !s.x32 { // x32 shares x86_64's audit arch: its section does the split
			c.farIf(unix.BPF_JEQ, s.audit, starts[i])
		}
	}
	a.ret(retBadArch)
	for i, s := range sections {
		a.bind(starts[i])
		a.load(offNr)
		if s == archX86_64 {
			if x32 != next {
				c.farIf(unix.BPF_JGE, x32Bit, x32)
			} else {
				skip := a.newLabel()
				a.jump(unix.BPF_JGE, x32Bit, next, skip)
				a.ret(retBadArch)
				a.bind(skip)
			}
		}
		c.section(s, groups[i])
	}
	return a.assemble()
}

// farIf jumps to target, however far, when the accumulator op k holds.
func (c *compiler) farIf(op uint16, k uint32, target label) {
	skip := c.a.newLabel()
	c.a.jump(op, k, next, skip)
	c.a.goTo(target)
	c.a.bind(skip)
}

// groupRules resolves the rules' names for one ABI, skipping the names it
// does not know (as libseccomp and runc do).
func groupRules(s *arch, rules []rule) ([]*group, error) {
	byNr := map[uint32]*group{}
	var out []*group
	for _, r := range rules {
		for _, name := range r.names {
			nr, ok := s.nrs[name]
			if !ok {
				continue
			}
			g := byNr[nr]
			if g == nil {
				g = &group{nr: nr, block: next}
				byNr[nr] = g
				out = append(out, g)
			}
			if len(r.args) > 0 {
				g.conds = append(g.conds, r)
				continue
			}
			// The first rule without conditions wins, as with libseccomp
			// 2.5 under runc: podman's default profile allows setns and
			// later denies it to containers without CAP_SYS_ADMIN, and
			// runc lets it through.
			if g.uncond == nil {
				ret := r.ret
				g.uncond = &ret
			}
		}
	}
	return out, nil
}

func (c *compiler) section(s *arch, groups []*group) {
	a := &c.a
	if enosysStub(c.def, c.listed, s) && len(groups) > 0 {
		var max uint32
		for _, g := range groups {
			max = maxU32(max, g.nr)
		}
		skip := a.newLabel()
		a.jump(unix.BPF_JGT, max, next, skip)
		a.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
		a.bind(skip)
	}
	for start := 0; start < len(groups); start += chunk {
		c.compares(groups[start:min(start+chunk, len(groups))])
	}
	a.ret(c.def)
	for _, g := range groups {
		if g.block != next {
			a.bind(g.block)
			c.argBlock(s, g)
		}
	}
}

// enosysStub tells whether calls newer than any the config names get
// ENOSYS rather than the default errno, so that programs fall back to
// older calls. runc adds this for the architectures the config lists when
// the default action is not a permissive one (allow, log, trace).
func enosysStub(def uint32, listed []specs.Arch, s *arch) bool {
	switch def & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG, unix.SECCOMP_RET_TRACE:
		return false
	}
	for _, a := range listed {
		if a == s.name {
			return true
		}
	}
	return false
}

func maxU32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// compares emits one compare per syscall, then the shared returns of the
// unconditional ones and jumps to the argument blocks of the others.
func (c *compiler) compares(groups []*group) {
	a := &c.a
	rets := map[uint32]label{}
	var retOrder []uint32
	type tramp struct{ from, to label }
	var tramps []tramp
	for _, g := range groups {
		var target label
		if len(g.conds) == 0 {
			l, ok := rets[*g.uncond]
			if !ok {
				l = a.newLabel()
				rets[*g.uncond] = l
				retOrder = append(retOrder, *g.uncond)
			}
			target = l
		} else {
			g.block = a.newLabel()
			target = a.newLabel()
			tramps = append(tramps, tramp{target, g.block})
		}
		a.jump(unix.BPF_JEQ, g.nr, target, next)
	}
	after := a.newLabel()
	a.goTo(after)
	for _, v := range retOrder {
		a.bind(rets[v])
		a.ret(v)
	}
	for _, t := range tramps {
		a.bind(t.from)
		a.goTo(t.to)
	}
	a.bind(after)
}

// argBlock tries the syscall's conditional rules in order, then its
// unconditional one or the default.
func (c *compiler) argBlock(s *arch, g *group) {
	for _, r := range g.conds {
		fail := c.a.newLabel()
		for _, arg := range r.args {
			c.compareArg(s, arg.Index, arg.Op, arg.Value, arg.ValueTwo, fail)
		}
		c.a.ret(r.ret)
		c.a.bind(fail)
	}
	if g.uncond != nil {
		c.a.ret(*g.uncond)
	} else {
		c.a.ret(c.def)
	}
}
