package runtime

import (
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Features describes what this runtime honours, as `runc features` does
// (runtime-spec features.md), from the tables the runtime itself uses.
func Features() *features.Features {
	yes := true
	f := &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         append([]string(nil), hookKinds...),
		MountOptions:  append(sortedKeys(mountFlags), sortedKeys(propagationFlags)...),
		Linux: &features.Linux{
			Namespaces:   []string{},
			Capabilities: sortedKeys(capNames),
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: new(bool), SystemdUser: new(bool)},
			Seccomp: &features.Seccomp{Enabled: &yes,
				Actions: []string{string(specs.ActKill), string(specs.ActKillProcess), string(specs.ActKillThread),
					string(specs.ActTrap), string(specs.ActErrno), string(specs.ActTrace), string(specs.ActAllow), string(specs.ActLog)},
				Operators: []string{string(specs.OpNotEqual), string(specs.OpLessThan), string(specs.OpLessEqual),
					string(specs.OpEqualTo), string(specs.OpGreaterEqual), string(specs.OpGreaterThan), string(specs.OpMaskedEqual)},
				Archs: []string{string(specs.ArchX86_64), string(specs.ArchX86), string(specs.ArchX32),
					string(specs.ArchAARCH64), string(specs.ArchARM)},
			},
			Apparmor: &features.Apparmor{Enabled: new(bool)},
			Selinux:  &features.Selinux{Enabled: new(bool)},
		},
		Annotations: map[string]string{},
	}
	for t := range supportedNamespaces {
		f.Linux.Namespaces = append(f.Linux.Namespaces, string(t))
	}
	sort.Strings(f.Linux.Namespaces)
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
