// Package runtime runs containers: from an image of the layer store (the
// image's layers merged by the unionfs package with a fresh upper dir) or
// from an OCI runtime bundle (config.json + rootfs dir), the way runc does.
// No kernel overlay is used anywhere: the container's root filesystem is a
// FUSE union served in-process.
//
// # Processes
//
// Three processes take part in one container; the last two are re-executions
// of the running binary (/proc/self/exe) told what to do by a hidden first
// argument (see IsStage):
//
//  1. the front end (the `crun-lite run` process the user started). It
//     writes the container's config, starts the supervisor, writes its
//     uid/gid maps when it gets a user namespace (newuidmap/newgidmap for
//     /etc/subuid ranges), forwards signals to it, relays the terminal
//     (-t) and exits with the container's exit status.
//  2. the supervisor, started in a new mount namespace (and, rootless, a new
//     user namespace, which a multi-threaded Go process cannot enter later).
//     It makes every mount private, mounts the union with unionfs.Mount and
//     serves it from a goroutine of its own for the whole life of the
//     container, sets up cgroups, starts the container init, forwards
//     signals to it, reaps it, records its exit status, then unmounts.
//     Because the union lives only in the supervisor's private mount
//     namespace (and in the container's copy of it), nothing is ever
//     mounted in the host's namespace: if any of the processes is killed,
//     the kernel drops the mounts with the last process that sees them.
//  3. the container init, started by the supervisor in new pid, uts, ipc,
//     mount (and unless --net host, network) namespaces. It waits until it
//     is in its cgroups, mounts /proc, /sys, /dev, the volumes, pivot_roots
//     into the union mount and detaches the old root, sets the hostname,
//     drops capabilities, sets no_new_privs, rlimits and ids, loads the
//     seccomp filter (package seccomp) and execs the command, which thereby
//     is pid 1 of the container.
//
// When the front end of a foreground container dies without a word, its
// end of the supervisor's control pipe closes and the supervisor kills the
// container and cleans up; when the supervisor itself dies, the container
// init gets SIGKILL (parent-death signal). So no stray process outlives the
// front end, and crun-lite rm removes whatever a killed supervisor left.
//
// `crun-lite exec` adds a process to a running container: the front end
// forks by hand into the init's namespaces (a Go process cannot setns into
// a user or mount namespace), runs an exec stage from a sealed memfd copy
// of the binary, moves it into the init's cgroups, and the stage sets the
// process up as the init does before it executes the command (see
// execfork.go).
//
// # Storage
//
// Containers live under <store root>/containers/<id>/: container.json (what
// was asked), config.json (the OCI runtime config actually run), state.json,
// and for image containers upper/ (the container's writes, OCI whiteouts),
// work/ (copy-up scratch), init/ (a tiny top lower layer holding
// /etc/hosts, /etc/hostname and /etc/resolv.conf) and merged/ (the mount
// point, used only inside the supervisor's namespace). The upper dir stays
// until the container is removed, so it can be committed.
package runtime
