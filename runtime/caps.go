package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNames maps capability names to numbers (linux/capability.h).
var capNames = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// capMask is a set of capabilities as a bit mask.
type capMask uint64

// parseCaps turns names into a mask. Capabilities unknown to this table or
// to the running kernel are skipped with a warning, as runc does.
func parseCaps(names []string, last int, warn func(string)) capMask {
	var m capMask
	for _, n := range names {
		v, ok := capNames[strings.ToUpper(n)]
		if !ok || v > last {
			warn(fmt.Sprintf("capability %s is not known to this kernel; ignored", n))
			continue
		}
		m |= 1 << v
	}
	return m
}

// lastCap is the highest capability the kernel knows.
func lastCap() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 40
	}
	return n
}

// capPlan is the capability sets a process will have.
type capPlan struct {
	bounding, effective, permitted, inheritable, ambient capMask
	last                                                 int
}

func newCapPlan(c *specs.LinuxCapabilities, warn func(string)) *capPlan {
	p := &capPlan{last: lastCap()}
	if c == nil {
		return p
	}
	p.bounding = parseCaps(c.Bounding, p.last, warn)
	p.effective = parseCaps(c.Effective, p.last, warn)
	p.permitted = parseCaps(c.Permitted, p.last, warn)
	p.inheritable = parseCaps(c.Inheritable, p.last, warn)
	p.ambient = parseCaps(c.Ambient, p.last, warn)
	return p
}

// dropBounding removes every capability outside the bounding set. It runs
// while we still hold CAP_SETPCAP, i.e. before changing ids.
func (p *capPlan) dropBounding() error {
	for c := 0; c <= p.last; c++ {
		if p.bounding&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// apply sets the permitted, effective and inheritable sets of the calling
// thread and raises the ambient ones. Capabilities are per thread: the
// caller has the OS thread locked and execs from it.
func (p *capPlan) apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		data[i].Effective = uint32(p.effective >> (32 * i))
		data[i].Permitted = uint32(p.permitted >> (32 * i))
		data[i].Inheritable = uint32(p.inheritable >> (32 * i))
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; c <= p.last; c++ {
		// The kernel only lets a capability be ambient when it is both
		// permitted and inheritable; runc skips the others the same way.
		want := capMask(1) << c
		if p.ambient&want == 0 || p.permitted&want == 0 || p.inheritable&want == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", c, err)
		}
	}
	return nil
}
