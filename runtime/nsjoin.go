package runtime

import (
	"fmt"
	"os/exec"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Joining namespaces by linux.namespaces[].path. The supervisor is a
// multi-threaded Go process, so it cannot enter another mount or user
// namespace (the kernel refuses both to a process with threads). The
// others are per thread: the supervisor's main thread (locked to it) enters
// them, forks the init, which inherits them, and goes back. A pid namespace
// entered this way is the one of the init's children and of the init itself,
// which is forked after the setns.

// joinable are the namespace types that can be joined by path.
var joinable = map[specs.LinuxNamespaceType]bool{
	specs.NetworkNamespace: true, specs.IPCNamespace: true, specs.UTSNamespace: true,
	specs.PIDNamespace: true, specs.CgroupNamespace: true,
}

// nsFiles are the /proc/thread-self/ns names and setns flags of joinable types.
var nsFiles = map[specs.LinuxNamespaceType]struct {
	name string
	flag int
}{
	specs.NetworkNamespace: {"net", unix.CLONE_NEWNET}, specs.IPCNamespace: {"ipc", unix.CLONE_NEWIPC},
	specs.UTSNamespace: {"uts", unix.CLONE_NEWUTS}, specs.PIDNamespace: {"pid_for_children", unix.CLONE_NEWPID},
	specs.CgroupNamespace: {"cgroup", unix.CLONE_NEWCGROUP},
}

// startInNamespaces starts cmd from this thread after entering the
// namespaces the config names by path, and comes back to ours. The caller's
// goroutine must be locked to its thread.
func startInNamespaces(spec *specs.Spec, cmd *exec.Cmd) error {
	var back []func()
	defer func() {
		for i := len(back) - 1; i >= 0; i-- {
			back[i]()
		}
	}()
	if spec.Linux != nil {
		for i, ns := range spec.Linux.Namespaces {
			if ns.Path == "" {
				continue
			}
			restore, err := enterNamespace(ns)
			if err != nil {
				return runnerErr("linux.namespaces[%d].path %s: %v", i, ns.Path, err)
			}
			back = append(back, restore)
		}
	}
	return cmd.Start()
}

// enterNamespace moves this thread into ns and returns how to go back.
func enterNamespace(ns specs.LinuxNamespace) (func(), error) {
	nf, ok := nsFiles[ns.Type]
	if !ok {
		return nil, fmt.Errorf("joining a %s namespace is not supported", ns.Type)
	}
	own, err := unix.Open("/proc/thread-self/ns/"+nf.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open our own %s namespace: %w", ns.Type, err)
	}
	// O_PATH is not enough for setns on older kernels; a plain open is.
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(own)
		return nil, err
	}
	defer unix.Close(fd)
	// setns checks the file is a namespace of this type (EINVAL if not).
	if err := unix.Setns(fd, nf.flag); err != nil {
		unix.Close(own)
		return nil, fmt.Errorf("not a %s namespace we may join: %w", ns.Type, err)
	}
	return func() {
		unix.Setns(own, nf.flag)
		unix.Close(own)
	}, nil
}
