package seccomp

//go:generate go run gen_tables.go

import (
	"fmt"
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// x32Bit marks the syscall numbers of the x32 ABI, which the kernel reports
// with the x86_64 audit arch.
const x32Bit = 0x40000000

// arch is one ABI a filter can have a section for.
type arch struct {
	name   specs.Arch
	audit  uint32            // seccomp_data.arch
	bits32 bool              // arguments are 32 bits wide
	x32    bool              // numbers carry x32Bit
	nrs    map[string]uint32 // syscall name -> number
}

var (
	archX86_64  = &arch{name: specs.ArchX86_64, audit: unix.AUDIT_ARCH_X86_64, nrs: sysX86_64}
	archX32     = &arch{name: specs.ArchX32, audit: unix.AUDIT_ARCH_X86_64, x32: true, bits32: true, nrs: x32Table()}
	archX86     = &arch{name: specs.ArchX86, audit: unix.AUDIT_ARCH_I386, bits32: true, nrs: sysX86}
	archAARCH64 = &arch{name: specs.ArchAARCH64, audit: unix.AUDIT_ARCH_AARCH64, nrs: sysAARCH64}
	archARM     = &arch{name: specs.ArchARM, audit: unix.AUDIT_ARCH_ARM, bits32: true, nrs: sysARM}
)

// nativeArches lists, per GOARCH, the ABIs its kernel can run: the native
// one first (a filter always covers it), then the compat ones a profile may
// add.
var nativeArches = map[string][]*arch{
	"amd64": {archX86_64, archX86, archX32},
	"386":   {archX86},
	"arm64": {archAARCH64, archARM},
	"arm":   {archARM},
}

// knownArches are the runtime-spec's architecture names. A profile may
// name any of them (docker's lists several); those this machine cannot run
// need no section.
var knownArches = map[specs.Arch]bool{
	specs.ArchX86: true, specs.ArchX86_64: true, specs.ArchX32: true, specs.ArchARM: true,
	specs.ArchAARCH64: true, specs.ArchMIPS: true, specs.ArchMIPS64: true, specs.ArchMIPS64N32: true,
	specs.ArchMIPSEL: true, specs.ArchMIPSEL64: true, specs.ArchMIPSEL64N32: true, specs.ArchPPC: true,
	specs.ArchPPC64: true, specs.ArchPPC64LE: true, specs.ArchS390: true, specs.ArchS390X: true,
	specs.ArchPARISC: true, specs.ArchPARISC64: true, specs.ArchRISCV64: true, specs.ArchLOONGARCH64: true,
}

// sectionsFor picks the ABIs a filter for goarch has sections for: the
// native one and the listed ones this kernel can run.
func sectionsFor(goarch string, listed []specs.Arch) ([]*arch, error) {
	possible, ok := nativeArches[goarch]
	if !ok {
		return nil, fmt.Errorf("seccomp filters are not supported on %s", goarch)
	}
	out := []*arch{possible[0]}
	for i, name := range listed {
		if !knownArches[name] {
			return nil, fmt.Errorf("architectures[%d]: unknown architecture %q", i, name)
		}
		for _, a := range possible[1:] {
			if a.name == name && !containsArch(out, a) {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func containsArch(list []*arch, a *arch) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func nativeGOARCH() string { return goruntime.GOARCH }

// x32Syscalls are the x32 ABI's own numbers (512-547 with x32Bit), for
// calls whose x86_64 numbers x32 does not use; the range is closed, no call
// will be added to it (arch/x86/entry/syscalls/syscall_64.tbl).
var x32Syscalls = []string{
	"rt_sigaction", "rt_sigreturn", "ioctl", "readv", "writev", "recvfrom", "sendmsg", "recvmsg",
	"execve", "ptrace", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "sigaltstack",
	"timer_create", "mq_notify", "kexec_load", "waitid", "set_robust_list", "get_robust_list",
	"vmsplice", "move_pages", "preadv", "pwritev", "rt_tgsigqueueinfo", "recvmmsg", "sendmmsg",
	"process_vm_readv", "process_vm_writev", "setsockopt", "getsockopt", "io_setup", "io_submit",
	"execveat", "preadv2", "pwritev2",
}

// x86_64Only are the "64" entries of syscall_64.tbl below 512 without an
// x32 number of their own: x32 has no such calls.
var x86_64Only = []string{
	"uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module", "nfsservctl",
	"set_thread_area", "get_thread_area", "epoll_ctl_old", "epoll_wait_old", "vserver",
	"uretprobe", "uprobe",
}

// x32Table derives the x32 numbers: the x86_64 number of every common call,
// or the x32 ABI's own, each with x32Bit.
func x32Table() map[string]uint32 {
	out := make(map[string]uint32, len(sysX86_64))
	for name, nr := range sysX86_64 {
		out[name] = x32Bit | nr
	}
	for _, name := range x86_64Only {
		delete(out, name)
	}
	for i, name := range x32Syscalls {
		out[name] = x32Bit | uint32(512+i)
	}
	return out
}
