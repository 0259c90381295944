package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Default is docker's default profile for a container whose bounding set
// is bounding (several rules depend on capabilities: with CAP_SYS_ADMIN,
// for example, mount and unshare are allowed).
func Default(bounding []string) (*specs.LinuxSeccomp, error) {
	return mobyseccomp.GetDefaultProfile(capsSpec(bounding))
}

// FromDocker reads a profile in docker's format (what `docker run
// --security-opt seccomp=FILE` takes): its includes and excludes are
// resolved against bounding, this architecture and the running kernel. A
// profile without defaultAction and syscalls means no filter (nil), as in
// docker.
func FromDocker(data []byte, bounding []string) (*specs.LinuxSeccomp, error) {
	var p mobyseccomp.Seccomp
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a seccomp profile: %w", err)
	}
	for i, call := range p.Syscalls {
		if call == nil {
			return nil, fmt.Errorf("syscalls[%d] is null", i)
		}
	}
	s, err := mobyseccomp.LoadProfile(string(data), capsSpec(bounding))
	if err != nil {
		return nil, err
	}
	if s != nil {
		// Catch what the filter cannot honour now, not in the container.
		if _, err := Compile(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func capsSpec(bounding []string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: bounding}}}
}
