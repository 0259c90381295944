package runtime

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/unionfsd/unionfsd/runtime/seccomp"
)

// SeccompUnconfined as RunOptions.Seccomp runs a container without a
// seccomp filter.
const SeccompUnconfined = "unconfined"

// seccompFor is the seccomp config of an image container: docker's default
// profile (""), none (SeccompUnconfined), or the docker-format profile in
// a file. bounding is the container's bounding set, which decides the
// profiles' capability-dependent rules, as in docker.
func seccompFor(opt string, bounding []string) (*specs.LinuxSeccomp, error) {
	switch opt {
	case "":
		s, err := seccomp.Default(bounding)
		if err != nil {
			return nil, runnerErr("default seccomp profile: %v", err)
		}
		return s, nil
	case SeccompUnconfined:
		return nil, nil
	}
	data, err := os.ReadFile(opt)
	if err != nil {
		return nil, runnerErr("seccomp profile %s: %v", opt, unwrapPath(err))
	}
	s, err := seccomp.FromDocker(data, bounding)
	if err != nil {
		return nil, runnerErr("seccomp profile %s: %v", opt, err)
	}
	return s, nil
}

// checkBundleSeccomp compiles a bundle's linux.seccomp, so that what the
// filter cannot honour stops create, naming the field.
func checkBundleSeccomp(spec *specs.Spec, configPath string) error {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return nil
	}
	if _, err := seccomp.Compile(spec.Linux.Seccomp); err != nil {
		return runnerErr("%s: linux.seccomp.%v", configPath, err)
	}
	return nil
}

// compileSeccomp prepares the container's filter before the rootfs is set
// up: installing it must be the last thing before exec (or before the
// capabilities drop), with nothing left to fail.
func (in *containerInit) compileSeccomp() error {
	if in.spec.Linux == nil || in.spec.Linux.Seccomp == nil {
		return nil
	}
	f, err := seccomp.Compile(in.spec.Linux.Seccomp)
	if err != nil {
		return runnerErr("config.json: linux.seccomp.%v", err)
	}
	in.seccomp = f
	return nil
}

// seccompBeforeCaps installs the filter while we still have CAP_SYS_ADMIN
// when no_new_privs is off: loading a filter needs one or the other. The
// filter then also sees the calls that drop privileges (as in runc).
func (in *containerInit) seccompBeforeCaps() error {
	if in.seccomp == nil || in.spec.Process.NoNewPrivileges {
		return nil
	}
	return in.seccomp.Install()
}

// seccompLast installs the filter as late as possible, right before exec,
// when no_new_privs is set (as runc does), so that it filters the least of
// our own calls.
func (in *containerInit) seccompLast() error {
	if in.seccomp == nil || !in.spec.Process.NoNewPrivileges {
		return nil
	}
	return in.seccomp.Install()
}
