package runtime

import (
	"encoding/binary"
	"fmt"
	goruntime "runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroup v2 has no devices files: the kernel asks an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup instead. We assemble
// it ourselves from the same ordered rules as the v1 files: the rules are
// tested from the last to the first, and the first that matches decides
// (the deny-all at the start makes "no match" a denial).

// BPF instruction encodings we use (see the kernel's bpf_common.h).
const (
	bpfLdxMemW    = 0x61 // dst = *(u32 *)(src + off)
	bpfMov32Reg   = 0xbc // dst = (u32)src
	bpfAnd32Imm   = 0x54 // dst &= imm
	bpfRsh32Imm   = 0x74 // dst >>= imm
	bpfMov64Imm   = 0xb7 // dst = imm
	bpfJne32Imm   = 0x56 // if (u32)dst != imm goto +off
	bpfJne32Reg   = 0x5e // if (u32)dst != (u32)src goto +off
	bpfJeq32Imm   = 0x16 // if (u32)dst == imm goto +off
	bpfExit       = 0x95
	bpfDevBlock   = 1 // bpf_cgroup_dev_ctx.access_type & 0xffff
	bpfDevChar    = 2
	bpfAccMknod   = 1 // bpf_cgroup_dev_ctx.access_type >> 16
	bpfAccRead    = 2
	bpfAccWrite   = 4
	bpfAccAll     = bpfAccMknod | bpfAccRead | bpfAccWrite
	bpfInsnLength = 8
)

type bpfInsn struct {
	op       uint8
	dst, src uint8
	off      int16
	imm      int32
}

// Registers: r1 the context; r3 device type, r4 access, r5 major, r6 minor.
var devFilterPrologue = []bpfInsn{
	{op: bpfLdxMemW, dst: 2, src: 1, off: 0},
	{op: bpfMov32Reg, dst: 3, src: 2},
	{op: bpfAnd32Imm, dst: 3, imm: 0xffff},
	{op: bpfMov32Reg, dst: 4, src: 2},
	{op: bpfRsh32Imm, dst: 4, imm: 16},
	{op: bpfLdxMemW, dst: 5, src: 1, off: 4},
	{op: bpfLdxMemW, dst: 6, src: 1, off: 8},
}

// deviceFilter assembles the program for rules.
func deviceFilter(rules []specs.LinuxDeviceCgroup) ([]bpfInsn, error) {
	prog := append([]bpfInsn(nil), devFilterPrologue...)
	for i := len(rules) - 1; i >= 0; i-- {
		block, err := ruleBlock(rules[i])
		if err != nil {
			return nil, fmt.Errorf("device rule %d: %v", i, err)
		}
		prog = append(prog, block...)
		if len(block) == 2 {
			// A rule for every device and access decides everything
			// left; the verifier refuses code that cannot be reached.
			return prog, nil
		}
	}
	return append(prog, bpfInsn{op: bpfMov64Imm, dst: 0, imm: 0}, bpfInsn{op: bpfExit}), nil
}

// ruleBlock tests one rule: its checks jump past the block when the device
// or access does not match; the end returns the rule's verdict. An allow
// rule matches when it grants all the access asked for; a deny rule when
// it denies any of it.
func ruleBlock(r specs.LinuxDeviceCgroup) ([]bpfInsn, error) {
	if _, err := deviceRuleLines(r); err != nil {
		return nil, err
	}
	var checks []bpfInsn
	switch r.Type {
	case "c":
		checks = append(checks, bpfInsn{op: bpfJne32Imm, dst: 3, imm: bpfDevChar})
	case "b":
		checks = append(checks, bpfInsn{op: bpfJne32Imm, dst: 3, imm: bpfDevBlock})
	}
	if r.Major != nil && *r.Major >= 0 {
		checks = append(checks, bpfInsn{op: bpfJne32Imm, dst: 5, imm: int32(uint32(*r.Major))})
	}
	if r.Minor != nil && *r.Minor >= 0 {
		checks = append(checks, bpfInsn{op: bpfJne32Imm, dst: 6, imm: int32(uint32(*r.Minor))})
	}
	mask := accessMask(r.Access)
	if mask != bpfAccAll {
		checks = append(checks, bpfInsn{op: bpfMov32Reg, dst: 1, src: 4}, bpfInsn{op: bpfAnd32Imm, dst: 1, imm: mask})
		if r.Allow {
			checks = append(checks, bpfInsn{op: bpfJne32Reg, dst: 1, src: 4})
		} else {
			checks = append(checks, bpfInsn{op: bpfJeq32Imm, dst: 1, imm: 0})
		}
	}
	verdict := int32(0)
	if r.Allow {
		verdict = 1
	}
	block := append(checks, bpfInsn{op: bpfMov64Imm, dst: 0, imm: verdict}, bpfInsn{op: bpfExit})
	for i := range checks {
		if checks[i].op == bpfJne32Imm || checks[i].op == bpfJne32Reg || checks[i].op == bpfJeq32Imm {
			block[i].off = int16(len(block) - i - 1)
		}
	}
	return block, nil
}

func accessMask(access string) int32 {
	if access == "" {
		return bpfAccAll
	}
	var m int32
	for _, c := range access {
		switch c {
		case 'm':
			m |= bpfAccMknod
		case 'r':
			m |= bpfAccRead
		case 'w':
			m |= bpfAccWrite
		}
	}
	return m
}

func encodeBPF(prog []bpfInsn) []byte {
	out := make([]byte, len(prog)*bpfInsnLength)
	for i, in := range prog {
		b := out[i*bpfInsnLength:]
		b[0] = in.op
		b[1] = in.dst&0xf | in.src<<4
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
	}
	return out
}

// bpfProgLoadAttr is the BPF_PROG_LOAD part of union bpf_attr.
type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// bpfProgAttachAttr is the BPF_PROG_ATTACH part of union bpf_attr.
type bpfProgAttachAttr struct {
	targetFd, attachBpfFd, attachType, attachFlags, replaceBpfFd uint32
}

// loadDeviceFilter loads the program and returns its descriptor; the
// verifier's log comes with a refusal.
func loadDeviceFilter(prog []bpfInsn) (int, error) {
	code := encodeBPF(prog)
	license := []byte("Apache\x00")
	logBuf := make([]byte, 64<<10)
	attr := bpfProgLoadAttr{progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE, insnCnt: uint32(len(prog)),
		insns: uint64(uintptr(unsafe.Pointer(&code[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1, logSize: uint32(len(logBuf)), logBuf: uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
		expectedAttachType: unix.BPF_CGROUP_DEVICE}
	copy(attr.progName[:], "crun_lite_dev")
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	goruntime.KeepAlive(code)
	goruntime.KeepAlive(license)
	goruntime.KeepAlive(logBuf)
	if errno != 0 {
		log := string(logBuf)
		if i := indexNUL(log); i >= 0 {
			log = log[:i]
		}
		return -1, fmt.Errorf("load the device filter: %v %s", errno, log)
	}
	return int(fd), nil
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// attachDeviceFilter loads the program for rules and attaches it to the
// cgroup v2 dir. It stays attached until the cgroup is removed. With
// BPF_F_ALLOW_MULTI the programs of the parents (systemd's) still run:
// a device must pass all of them.
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	prog, err := deviceFilter(rules)
	if err != nil {
		return runnerErr("%v", err)
	}
	progFd, err := loadDeviceFilter(prog)
	if err != nil {
		return runnerErr("%v", err)
	}
	defer unix.Close(progFd)
	cgFd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return runnerErr("open cgroup %s: %v", dir, err)
	}
	defer unix.Close(cgFd)
	attr := bpfProgAttachAttr{targetFd: uint32(cgFd), attachBpfFd: uint32(progFd), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_ATTACH, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		return runnerErr("attach the device filter to cgroup %s: %v", dir, errno)
	}
	return nil
}
