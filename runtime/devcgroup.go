package runtime

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The devices cgroup decides which device nodes a container may create
// (m), read (r) and write (w). Without it, a process with CAP_MKNOD makes
// a node of the host's disk and opens it. Every container that is not in
// a user namespace gets one, as under runc: deny everything, then the
// config's rules in order, then the nodes of linux.devices, then the
// standard set below. (In a user namespace the kernel refuses mknod of
// devices, and the container cannot write the host's cgroups.)

// wildcard is the -1 of a rule's major or minor.
var wildcard = int64(-1)

func devNum(n int64) *int64 { return &n }

// allowedDevices is runc's default rule set (specconv.AllowedDevices):
// mknod of any node (opening it is what counts), the standard character
// devices, /dev/console and the pseudo-terminals.
var allowedDevices = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Major: &wildcard, Minor: &wildcard, Access: "m"},
	{Allow: true, Type: "b", Major: &wildcard, Minor: &wildcard, Access: "m"},
	{Allow: true, Type: "c", Major: devNum(1), Minor: devNum(3), Access: "rwm"},   // /dev/null
	{Allow: true, Type: "c", Major: devNum(1), Minor: devNum(8), Access: "rwm"},   // /dev/random
	{Allow: true, Type: "c", Major: devNum(1), Minor: devNum(7), Access: "rwm"},   // /dev/full
	{Allow: true, Type: "c", Major: devNum(5), Minor: devNum(0), Access: "rwm"},   // /dev/tty
	{Allow: true, Type: "c", Major: devNum(1), Minor: devNum(5), Access: "rwm"},   // /dev/zero
	{Allow: true, Type: "c", Major: devNum(1), Minor: devNum(9), Access: "rwm"},   // /dev/urandom
	{Allow: true, Type: "c", Major: devNum(5), Minor: devNum(1), Access: "rwm"},   // /dev/console
	{Allow: true, Type: "c", Major: devNum(136), Minor: &wildcard, Access: "rwm"}, // /dev/pts/*
	{Allow: true, Type: "c", Major: devNum(5), Minor: devNum(2), Access: "rwm"},   // /dev/ptmx
}

// deviceRuleLines turns one rule into the lines a v1 devices.allow or
// devices.deny takes. A rule for all devices with all access is "a", which
// the kernel reads as "reset to allow (or deny) everything"; a partial one
// for both types becomes a line per type.
func deviceRuleLines(r specs.LinuxDeviceCgroup) ([]string, error) {
	access := r.Access
	if access == "" {
		access = "rwm"
	}
	if strings.Trim(access, "rwm") != "" {
		return nil, fmt.Errorf("access %q: want letters of rwm", r.Access)
	}
	major, err := devNumText(r.Major)
	if err != nil {
		return nil, fmt.Errorf("major: %v", err)
	}
	minor, err := devNumText(r.Minor)
	if err != nil {
		return nil, fmt.Errorf("minor: %v", err)
	}
	switch r.Type {
	case "", "a":
		if major == "*" && minor == "*" && len(dedupe(access)) == 3 {
			return []string{"a"}, nil
		}
		return []string{"c " + major + ":" + minor + " " + access, "b " + major + ":" + minor + " " + access}, nil
	case "c", "b":
		return []string{r.Type + " " + major + ":" + minor + " " + access}, nil
	}
	return nil, fmt.Errorf("type %q: want a, b or c", r.Type)
}

// dedupe returns the distinct letters of s.
func dedupe(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(string(out), rune(s[i])) {
			out = append(out, s[i])
		}
	}
	return string(out)
}

func devNumText(n *int64) (string, error) {
	switch {
	case n == nil || *n == -1:
		return "*", nil
	case *n < 0 || *n > 1<<32-1:
		return "", fmt.Errorf("%d is out of range", *n)
	}
	return fmt.Sprint(*n), nil
}

// deviceRules is the container's device rules in order (see above).
func deviceRules(spec *specs.Spec) []specs.LinuxDeviceCgroup {
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	if spec.Linux != nil {
		if spec.Linux.Resources != nil {
			rules = append(rules, spec.Linux.Resources.Devices...)
		}
		for _, d := range spec.Linux.Devices {
			if d.Type == "p" {
				continue // a fifo is no device
			}
			t := d.Type
			if t == "u" {
				t = "c"
			}
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: t, Major: devNum(d.Major), Minor: devNum(d.Minor), Access: "rwm"})
		}
	}
	return append(rules, allowedDevices...)
}

// deviceSettings is what the container's v1 devices cgroup gets written,
// in order.
func deviceSettings(spec *specs.Spec) ([]cgroupSetting, error) {
	var out []cgroupSetting
	for i, r := range deviceRules(spec) {
		lines, err := deviceRuleLines(r)
		if err != nil {
			return nil, runnerErr("device rule %d: %v", i, err)
		}
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		for _, l := range lines {
			out = append(out, cgroupSetting{file: file, value: l})
		}
	}
	return out, nil
}
