package runtime

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// validConfig is `crun-lite spec` with a command, as JSON.
func validConfig(t testing.TB, rootless bool, edit func(map[string]any)) []byte {
	t.Helper()
	data, err := json.Marshal(DefaultSpec(rootless, 1000, 1000))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	data, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sub(m map[string]any, key string) map[string]any {
	if v, ok := m[key].(map[string]any); ok {
		return v
	}
	v := map[string]any{}
	m[key] = v
	return v
}

// bundleConfigCases are configs and the error each must give ("" = valid).
var bundleConfigCases = []struct {
	name string
	edit func(map[string]any)
	err  string
}{
	{"spec as written", nil, ""},
	{"hooks", func(m map[string]any) {
		h := map[string]any{"path": "/bin/true", "args": []any{"true"}, "env": []any{"A=1"}, "timeout": 1}
		m["hooks"] = map[string]any{"prestart": []any{h}, "createRuntime": []any{h}, "createContainer": []any{h},
			"startContainer": []any{h}, "poststart": []any{h}, "poststop": []any{h}}
	}, ""},
	{"empty hooks", func(m map[string]any) { m["hooks"] = map[string]any{} }, ""},
	{"hook path relative", func(m map[string]any) {
		m["hooks"] = map[string]any{"poststop": []any{map[string]any{"path": "/bin/true"}, map[string]any{"path": "bin/true"}}}
	}, `hooks.poststop[1].path: "bin/true" is not an absolute path`},
	{"hook path missing", func(m map[string]any) {
		m["hooks"] = map[string]any{"createContainer": []any{map[string]any{"args": []any{"x"}}}}
	}, `hooks.createContainer[0].path: is missing`},
	{"hook timeout zero", func(m map[string]any) {
		m["hooks"] = map[string]any{"startContainer": []any{map[string]any{"path": "/bin/true", "timeout": 0}}}
	}, `hooks.startContainer[0].timeout: 0: must be greater than zero`},
	{"hook timeout negative", func(m map[string]any) {
		m["hooks"] = map[string]any{"prestart": []any{map[string]any{"path": "/bin/true", "timeout": -5}}}
	}, `hooks.prestart[0].timeout: -5: must be greater than zero`},
	{"seccomp", func(m map[string]any) {
		sub(m, "linux")["seccomp"] = map[string]any{"defaultAction": "SCMP_ACT_ERRNO", "architectures": []any{"SCMP_ARCH_X86_64"},
			"syscalls": []any{map[string]any{"names": []any{"read", "write", "exit_group"}, "action": "SCMP_ACT_ALLOW"}}}
	}, ""},
	{"seccomp listener", func(m map[string]any) {
		sub(m, "linux")["seccomp"] = map[string]any{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}
	}, "linux.seccomp."},
	{"apparmor", func(m map[string]any) { sub(m, "process")["apparmorProfile"] = "docker-default" }, "process.apparmorProfile: not supported"},
	{"selinux", func(m map[string]any) { sub(m, "process")["selinuxLabel"] = "system_u:system_r:container_t:s0" }, "process.selinuxLabel: not supported"},
	{"scheduler", func(m map[string]any) { sub(m, "process")["scheduler"] = map[string]any{"policy": "SCHED_FIFO"} }, "process.scheduler: not supported"},
	{"unknown rlimit", func(m map[string]any) {
		sub(m, "process")["rlimits"] = []any{map[string]any{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}}
	}, `process.rlimits[0].type: unknown rlimit "RLIMIT_BOGUS"`},
	{"systemd cgroupsPath", func(m map[string]any) { sub(m, "linux")["cgroupsPath"] = "machine.slice:libpod:abc" }, "linux.cgroupsPath: the systemd form slice:prefix:name needs --systemd-cgroup"},
	{"cgroupsPath with ..", func(m map[string]any) { sub(m, "linux")["cgroupsPath"] = "/a/../../etc" }, "linux.cgroupsPath: a path with .. is not allowed"},
	{"cgroupsPath with userns", func(m map[string]any) {
		sub(m, "linux")["cgroupsPath"] = "/a"
		sub(m, "linux")["namespaces"] = []any{map[string]any{"type": "user"}, map[string]any{"type": "mount"}}
	}, "linux.cgroupsPath: cgroups are not supported with a user namespace"},
	{"personality", func(m map[string]any) { sub(m, "linux")["personality"] = map[string]any{"domain": "LINUX32"} }, "linux.personality: not supported"},
	{"time namespace", func(m map[string]any) {
		sub(m, "linux")["namespaces"] = []any{map[string]any{"type": "time"}}
	}, `linux.namespaces[0].type: namespace type "time" is not supported`},
	{"join a namespace", func(m map[string]any) {
		sub(m, "linux")["namespaces"] = []any{map[string]any{"type": "mount", "path": "/proc/1/ns/mnt"}}
	}, "linux.namespaces[0].path: joining an existing mount namespace is not supported"},
	{"hostname without uts", func(m map[string]any) {
		sub(m, "linux")["namespaces"] = []any{map[string]any{"type": "mount"}}
	}, "hostname: needs a uts namespace"},
	{"mappings without userns", func(m map[string]any) {
		sub(m, "linux")["uidMappings"] = []any{map[string]any{"containerID": 0, "hostID": 1000, "size": 1}}
	}, "linux.uidMappings: set without a user namespace"},
	{"idmapped mount", func(m map[string]any) {
		m["mounts"] = []any{map[string]any{"destination": "/x", "type": "bind", "source": "/tmp", "options": []any{"bind"},
			"uidMappings": []any{map[string]any{"containerID": 0, "hostID": 1000, "size": 1}}}}
	}, "mounts[0].uidMappings: id-mapped mounts are not supported"},
	{"memory limit", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["memory"] = map[string]any{"limit": 1 << 26}
	}, ""},
	{"memory swap", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["memory"] = map[string]any{"limit": 1 << 26, "swap": 1 << 27}
	}, "linux.resources.memory.swap: not supported"},
	{"cpu shares", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["cpu"] = map[string]any{"shares": 512}
	}, ""},
	{"cpus and mems", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["cpu"] = map[string]any{"shares": 512, "quota": 50000, "cpus": "0", "mems": "0"}
	}, ""},
	{"cpu realtime", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["cpu"] = map[string]any{"realtimeRuntime": 950000}
	}, "linux.resources.cpu.realtimeRuntime: not supported"},
	{"cpuset in a user namespace", func(m map[string]any) {
		l := sub(m, "linux")
		l["namespaces"] = []any{map[string]any{"type": "user"}, map[string]any{"type": "mount"}, map[string]any{"type": "uts"}}
		l["uidMappings"] = []any{map[string]any{"containerID": 0, "hostID": 100000, "size": 65536}}
		l["gidMappings"] = []any{map[string]any{"containerID": 0, "hostID": 100000, "size": 65536}}
		sub(l, "resources")["cpu"] = map[string]any{"cpus": "0"}
	}, "linux.resources.cpuset: cgroup limits are not supported with a user namespace"},
	{"cpu period alone", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["cpu"] = map[string]any{"period": 100000}
	}, "linux.resources.cpu.period: not supported"},
	{"blockIO", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["blockIO"] = map[string]any{"weight": 100}
	}, "linux.resources.blockIO: not supported"},
	{"unified", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["unified"] = map[string]any{"memory.high": "1G"}
	}, "linux.resources.unified: not supported"},
	{"device rule type", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["devices"] = []any{map[string]any{"allow": true, "type": "x", "access": "r"}}
	}, `linux.resources.devices[0]: type "x": want a, b or c`},
	{"device rule access", func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["devices"] = []any{map[string]any{"allow": true, "type": "c", "access": "rwx"}}
	}, `linux.resources.devices[0]: access "rwx": want letters of rwm`},
	{"device node type", func(m map[string]any) {
		sub(m, "linux")["devices"] = []any{map[string]any{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}}
	}, `linux.devices[0].type: "q": want c, u, b or p`},
	{"windows section", func(m map[string]any) { m["windows"] = map[string]any{"layerFolders": []any{}} }, "windows: not supported on Linux"},
	{"no args", func(m map[string]any) { sub(m, "process")["args"] = []any{} }, "process.args is empty"},
	{"no root", func(m map[string]any) { delete(m, "root") }, "root.path is missing"},
	{"not json", func(m map[string]any) { m["process"] = "sh" }, "cannot unmarshal"},
}

func TestBundleConfigRefusesWhatItCannotHonour(t *testing.T) {
	for _, tc := range bundleConfigCases {
		_, err := decodeBundleConfig(validConfig(t, false, tc.edit), "/b/config.json")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		case err != nil && (!strings.HasPrefix(err.Error(), "/b/config.json: ") && !strings.HasPrefix(err.Error(), "bundle config /b/config.json: ")):
			t.Errorf("%s: error %q does not name the file", tc.name, err)
		}
	}
	// In a user namespace no cgroup limit can be set: refused, not ignored.
	_, err := decodeBundleConfig(validConfig(t, true, func(m map[string]any) {
		sub(sub(m, "linux"), "resources")["devices"] = []any{map[string]any{"allow": false, "access": "rwm"}}
	}), "c")
	if err == nil || !strings.Contains(err.Error(), "linux.resources.devices: cgroup limits are not supported with a user namespace") {
		t.Errorf("device rules with a user namespace: %v", err)
	}
	if _, err := decodeBundleConfig(validConfig(t, true, nil), "c"); err != nil {
		t.Errorf("spec --rootless: %v", err)
	}
}

func TestDeviceRuleLines(t *testing.T) {
	eight := int64(8)
	cases := []struct {
		rule specs.LinuxDeviceCgroup
		want string
	}{
		{specs.LinuxDeviceCgroup{Access: "rwm"}, "a"},
		{specs.LinuxDeviceCgroup{Type: "a", Access: "mrw"}, "a"},
		{specs.LinuxDeviceCgroup{}, "a"},
		{specs.LinuxDeviceCgroup{Type: "a", Access: "r"}, "c *:* r|b *:* r"},
		{specs.LinuxDeviceCgroup{Type: "b", Major: &eight, Access: "rw"}, "b 8:* rw"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: &eight, Minor: &wildcard, Access: "m"}, "c 8:* m"},
	}
	for _, tc := range cases {
		got, err := deviceRuleLines(tc.rule)
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("%+v: %q %v, want %q", tc.rule, got, err, tc.want)
		}
	}
	// Deny everything first, the config's rules, then the defaults.
	spec := DefaultSpec(false, 0, 0)
	spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0}}
	set, err := deviceSettings(spec)
	if err != nil || len(set) < 4 {
		t.Fatalf("deviceSettings: %v %v", set, err)
	}
	if set[0] != (cgroupSetting{file: "devices.deny", value: "a"}) || set[1] != (cgroupSetting{file: "devices.deny", value: "a"}) ||
		set[2] != (cgroupSetting{file: "devices.allow", value: "b 8:0 rwm"}) || set[len(set)-1].value != "c 5:2 rwm" {
		t.Errorf("deviceSettings: %v", set)
	}
}

var deviceLine = regexp.MustCompile(`^(a|[cb] (\*|[0-9]+):(\*|[0-9]+) [rwm]+)$`)

// FuzzBundleConfig feeds config.json documents to the bundle validation:
// it must never panic, every error is one line, and a config it accepts
// must go through what the runtime derives from it (cgroup settings,
// device rules, clone flags) without an error.
func FuzzBundleConfig(f *testing.F) {
	for _, rootless := range []bool{false, true} {
		for _, tc := range bundleConfigCases {
			f.Add(validConfig(f, rootless, tc.edit))
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"process":{"args":["sh"]},"root":{"path":"r"},"linux":{"resources":{"devices":[{"allow":true,"type":"c","major":-2}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := decodeBundleConfig(data, "config.json")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if len(spec.Process.Args) == 0 || spec.Root.Path == "" {
			t.Fatalf("accepted a config without args or root: %s", data)
		}
		if field, why := unsupportedField(spec); field != "" {
			t.Fatalf("accepted a config with %s: %s", field, why)
		}
		if _, err := namespaceFlags(spec); err != nil {
			t.Fatalf("accepted config, but the supervisor refuses it: %v", err)
		}
		var res *specs.LinuxResources
		if spec.Linux != nil {
			res = spec.Linux.Resources
		}
		cgroupWants(res)
		if hasNamespace(spec, specs.UserNamespace) {
			return
		}
		set, err := deviceSettings(spec)
		if err != nil {
			t.Fatalf("accepted config, but its device rules fail: %v", err)
		}
		for _, s := range set {
			if !deviceLine.MatchString(s.value) || (s.file != "devices.allow" && s.file != "devices.deny") {
				t.Fatalf("bad device setting %+v from %s", s, data)
			}
		}
		if _, err := deviceFilter(deviceRules(spec)); err != nil {
			t.Fatalf("accepted config, but its cgroup v2 device filter fails: %v", err)
		}
	})
}
