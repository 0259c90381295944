package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultPath is the PATH a container gets when its config sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// specCaps is the capability set `runc spec` writes into a new config.json.
var specCaps = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

// runCaps is the set image containers get: the default set docker and
// podman hand to runc, less CAP_MKNOD. docker can grant that one because a
// devices cgroup stops the nodes from working; we set up none, and /dev is
// a tmpfs without nodev, so a container could otherwise make and open the
// host's disks.
var runCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// maskedPaths are hidden in every container (a tmpfs or /dev/null over them).
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
}

// readonlyPaths are bind-mounted read-only over themselves.
var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// defaultMounts is the set of kernel filesystems every container gets.
// Rootless containers cannot mount sysfs without their own network
// namespace, nor pass gid=5 to devpts without a mapped gid 5; sysfsBind and
// noGid5 pick the variants `runc spec --rootless` uses.
func defaultMounts(sysfsBind, noGid5 bool) []specs.Mount {
	pts := []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}
	if noGid5 {
		pts = pts[:len(pts)-1]
	}
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	if sysfsBind {
		sys = specs.Mount{Destination: "/sys", Type: "none", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: pts},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		sys,
	}
}

func capSet(names []string) *specs.LinuxCapabilities {
	c := func() []string { return append([]string(nil), names...) }
	return &specs.LinuxCapabilities{Bounding: c(), Effective: c(), Permitted: c()}
}

// DefaultSpec is the config.json `crun-lite spec` writes: the same as
// `runc spec` (with --rootless: a user namespace mapping the caller to root,
// /sys bind-mounted, no network namespace), running sh on a terminal.
func DefaultSpec(rootless bool, uid, gid uint32) *specs.Spec {
	caps := capSet(specCaps)
	caps.Ambient = append([]string(nil), specCaps...)
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal:        true,
			User:            specs.User{UID: 0, GID: 0},
			Args:            []string{"sh"},
			Env:             []string{defaultPath, "TERM=xterm"},
			Cwd:             "/",
			Capabilities:    caps,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "crun-lite",
		Mounts: append(defaultMounts(rootless, rootless), specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}}),
		Linux: &specs.Linux{
			MaskedPaths:   append([]string(nil), maskedPaths...),
			ReadonlyPaths: append([]string(nil), readonlyPaths...),
		},
	}
	ns := []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace}
	if rootless {
		ns = []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.UserNamespace}
		spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uid, Size: 1}}
		spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: gid, Size: 1}}
	} else {
		spec.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	}
	for _, t := range ns {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: t})
	}
	return spec
}
