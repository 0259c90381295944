package runtime

import (
	"encoding/json"
	"fmt"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A bundle's config.json may ask for more than this runtime does. Every
// field we cannot honour is an error that names it: a container that runs
// without the hook or limit its author wrote is worse than one that does
// not run. docs/runtime-fields.md lists the fields; linux.seccomp is
// compiled here too, and refused where it cannot be honoured.

// decodeBundleConfig parses a config.json and checks it: what the runtime
// needs is there, and nothing it cannot honour is set. name prefixes the
// errors (the file's path).
func decodeBundleConfig(data []byte, name string) (*specs.Spec, error) {
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, runnerErr("bundle config %s: %v", name, err)
	}
	switch {
	case spec.Process == nil || len(spec.Process.Args) == 0:
		return nil, runnerErr("%s: process.args is empty", name)
	case spec.Root == nil || spec.Root.Path == "":
		return nil, runnerErr("%s: root.path is missing", name)
	}
	if field, why := unsupportedField(&spec); field != "" {
		return nil, runnerErr("%s: %s: %s", name, field, why)
	}
	if err := checkBundleSeccomp(&spec, name); err != nil {
		return nil, err
	}
	return &spec, nil
}

// unsupportedField returns the first field of spec the runtime cannot
// honour and why, or "".
func unsupportedField(spec *specs.Spec) (field, why string) {
	checks := []func(*specs.Spec) (string, string){checkPlatforms, checkHooks, checkProcess, checkMounts, checkLinux, checkResources}
	for _, check := range checks {
		if field, why = check(spec); field != "" {
			return field, why
		}
	}
	return "", ""
}

const notSupported = "not supported"

// firstSet returns the name of the first true entry, in name order.
func firstSet(fields map[string]bool) string {
	names := make([]string, 0, len(fields))
	for n, set := range fields {
		if set {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[0]
}

func checkPlatforms(spec *specs.Spec) (string, string) {
	f := firstSet(map[string]bool{"solaris": spec.Solaris != nil, "windows": spec.Windows != nil,
		"vm": spec.VM != nil, "zos": spec.ZOS != nil, "freebsd": spec.FreeBSD != nil})
	if f != "" {
		return f, "not supported on Linux"
	}
	return "", ""
}

func checkProcess(spec *specs.Spec) (string, string) {
	p := spec.Process
	f := firstSet(map[string]bool{
		"apparmorProfile": p.ApparmorProfile != "", "selinuxLabel": p.SelinuxLabel != "",
		"scheduler": p.Scheduler != nil, "ioPriority": p.IOPriority != nil,
		"execCPUAffinity": p.ExecCPUAffinity != nil, "commandLine": p.CommandLine != "",
		"user.username": p.User.Username != "",
	})
	if f != "" {
		return "process." + f, notSupported
	}
	for i, r := range p.Rlimits {
		if _, ok := rlimitNames[r.Type]; !ok {
			return fmt.Sprintf("process.rlimits[%d].type", i), fmt.Sprintf("unknown rlimit %q", r.Type)
		}
	}
	return "", ""
}

// checkMounts refuses id-mapped mounts.
func checkMounts(spec *specs.Spec) (string, string) {
	for i, m := range spec.Mounts {
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			return fmt.Sprintf("mounts[%d].uidMappings", i), "id-mapped mounts are not supported"
		}
	}
	return "", ""
}

// supportedNamespaces are the namespace types we create (never join).
var supportedNamespaces = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.IPCNamespace: true, specs.UTSNamespace: true,
	specs.MountNamespace: true, specs.CgroupNamespace: true, specs.UserNamespace: true,
}

func checkLinux(spec *specs.Spec) (string, string) {
	l := spec.Linux
	if l == nil {
		if spec.Hostname != "" || spec.Domainname != "" {
			return "hostname", "needs a uts namespace"
		}
		return "", ""
	}
	if why := checkCgroupsPath(l.CgroupsPath); why != "" {
		return "linux.cgroupsPath", why
	}
	f := firstSet(map[string]bool{
		"netDevices": len(l.NetDevices) > 0,
		"mountLabel": l.MountLabel != "", "intelRdt": l.IntelRdt != nil, "memoryPolicy": l.MemoryPolicy != nil,
		"personality": l.Personality != nil, "timeOffsets": len(l.TimeOffsets) > 0,
	})
	if f != "" {
		return "linux." + f, notSupported
	}
	for i, ns := range l.Namespaces {
		if !supportedNamespaces[ns.Type] {
			return fmt.Sprintf("linux.namespaces[%d].type", i), fmt.Sprintf("namespace type %q is not supported", ns.Type)
		}
		if ns.Path != "" && !joinable[ns.Type] {
			return fmt.Sprintf("linux.namespaces[%d].path", i), fmt.Sprintf("joining an existing %s namespace is not supported (net, ipc, uts, pid and cgroup are)", ns.Type)
		}
	}
	for i, d := range l.Devices {
		if d.Type != "c" && d.Type != "u" && d.Type != "b" && d.Type != "p" {
			return fmt.Sprintf("linux.devices[%d].type", i), fmt.Sprintf("%q: want c, u, b or p", d.Type)
		}
		if _, err := devNumText(&d.Major); err != nil || d.Major < 0 {
			return fmt.Sprintf("linux.devices[%d].major", i), "out of range"
		}
		if _, err := devNumText(&d.Minor); err != nil || d.Minor < 0 {
			return fmt.Sprintf("linux.devices[%d].minor", i), "out of range"
		}
	}
	userns := hasNamespace(spec, specs.UserNamespace)
	if userns && l.CgroupsPath != "" {
		return "linux.cgroupsPath", "cgroups are not supported with a user namespace"
	}
	if !userns && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) {
		return "linux.uidMappings", "set without a user namespace"
	}
	if (spec.Hostname != "" || spec.Domainname != "") && !hasNamespace(spec, specs.UTSNamespace) {
		return "hostname", "needs a uts namespace"
	}
	return "", ""
}

// checkResources allows the limits setupCgroups writes: memory.limit,
// cpu.quota and cpu.period, cpu.shares, cpu.cpus and cpu.mems, pids.limit
// and the device rules, and none in a
// user namespace (its processes cannot write the host's cgroups).
func checkResources(spec *specs.Spec) (string, string) {
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return "", ""
	}
	r := spec.Linux.Resources
	fields := map[string]bool{
		"blockIO": r.BlockIO != nil, "hugepageLimits": len(r.HugepageLimits) > 0, "network": r.Network != nil,
		"rdma": len(r.Rdma) > 0, "unified": len(r.Unified) > 0,
	}
	if m := r.Memory; m != nil {
		fields["memory.reservation"] = m.Reservation != nil
		fields["memory.swap"] = m.Swap != nil
		fields["memory.kernel"] = m.Kernel != nil
		fields["memory.kernelTCP"] = m.KernelTCP != nil
		fields["memory.swappiness"] = m.Swappiness != nil
		fields["memory.disableOOMKiller"] = m.DisableOOMKiller != nil
		fields["memory.useHierarchy"] = m.UseHierarchy != nil
		fields["memory.checkBeforeUpdate"] = m.CheckBeforeUpdate != nil
	}
	if c := r.CPU; c != nil {
		fields["cpu.burst"] = c.Burst != nil
		fields["cpu.realtimeRuntime"] = c.RealtimeRuntime != nil
		fields["cpu.realtimePeriod"] = c.RealtimePeriod != nil
		fields["cpu.idle"] = c.Idle != nil
		// A period alone would change nothing we write.
		fields["cpu.period"] = c.Period != nil && (c.Quota == nil || *c.Quota <= 0)
	}
	if f := firstSet(fields); f != "" {
		return "linux.resources." + f, notSupported
	}
	for i, d := range r.Devices {
		if _, err := deviceRuleLines(d); err != nil {
			return fmt.Sprintf("linux.resources.devices[%d]", i), err.Error()
		}
	}
	if hasNamespace(spec, specs.UserNamespace) {
		_, _, names := cgroupWants(r)
		if len(r.Devices) > 0 {
			names["devices"] = "device rules"
		}
		if f := firstSet(map[string]bool{"memory": names["memory"] != "", "pids": names["pids"] != "",
			"cpu": names["cpu"] != "", "cpuset": names["cpuset"] != "", "devices": names["devices"] != ""}); f != "" {
			return "linux.resources." + f, "cgroup limits are not supported with a user namespace"
		}
	}
	return "", ""
}
