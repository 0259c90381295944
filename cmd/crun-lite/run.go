package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/docker/go-units"
	"github.com/spf13/pflag"

	rt "github.com/unionfsd/unionfsd/runtime"
)

// The runner's commands (run, ps, rm and the OCI bundle commands) are thin:
// they turn flags into calls of the runtime package.

func init() {
	register(&command{
		name:    "run",
		args:    "[FLAGS] IMAGE [CMD [ARG...]] | -b BUNDLE ID",
		summary: "run a command in a new container from an image (or an OCI bundle with -b)",
		flags:   runFlags,
		run:     runRun,
	})
}

var runOpts struct {
	rm, tty, rootless, init, interactive bool
	name, workdir, user, hostname, net   string
	bundle, memory                       string
	env, volumes, securityOpts           []string
	publish                              []string
	pidsLimit                            int64
	cpus                                 float64
}

func runFlags(fs *pflag.FlagSet) {
	// Flags after IMAGE belong to the container's command.
	fs.SetInterspersed(false)
	fs.BoolVar(&runOpts.rm, "rm", false, "remove the container (and its upper dir) when it exits")
	fs.StringVar(&runOpts.name, "name", "", "container name (default: the first 12 digits of its ID)")
	fs.StringArrayVarP(&runOpts.env, "env", "e", nil, "set an environment variable K=V (K alone: pass the caller's value)")
	fs.StringVarP(&runOpts.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&runOpts.user, "user", "u", "", "USER[:GROUP] or UID[:GID] to run as")
	fs.StringVarP(&runOpts.hostname, "hostname", "h", "", "container host name (default: the short ID)")
	fs.BoolVarP(&runOpts.interactive, "interactive", "i", false, "accepted for docker's -i: the command always gets crun-lite's stdin")
	fs.StringArrayVarP(&runOpts.volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:ro]")
	fs.StringVar(&runOpts.net, "network", "none", "network: none (own namespace with loopback only), host, or bridge (a veth on the crunlite0 bridge, outbound NAT, -p; root only)")
	fs.StringVar(&runOpts.net, "net", "none", "same as --network")
	fs.StringArrayVarP(&runOpts.publish, "publish", "p", nil, "publish a container port on the host: [IP:]HOSTPORT:CONTAINERPORT[/udp] (with --network bridge)")
	fs.StringVarP(&runOpts.memory, "memory", "m", "", "memory limit: bytes, or with k, m, g (512m, 512mb, 1.5g, as docker)")
	fs.Int64Var(&runOpts.pidsLimit, "pids-limit", 0, "maximum number of processes")
	fs.Float64Var(&runOpts.cpus, "cpus", 0, "CPU quota in CPUs (1.5 = one and a half)")
	fs.BoolVarP(&runOpts.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fs.BoolVar(&runOpts.init, "init", false, "run an init as PID 1 that passes signals on to the command and reaps orphaned processes")
	fs.BoolVar(&runOpts.rootless, "rootless", false, "run in a user namespace (always on for non-root users; refused for root, whose container root would be the host's)")
	fs.StringVarP(&runOpts.bundle, "bundle", "b", "", "run the OCI bundle in this dir (then the argument is the container ID)")
	fs.StringArrayVar(&runOpts.securityOpts, "security-opt", nil, "seccomp=unconfined, or seccomp=FILE for a docker seccomp profile (default: docker's default profile)")
}

// runRun exits the process itself: the status is the container's (or
// 125-127 when it could not run), which main's error mapping cannot express.
func runRun(g *globals, args []string) error {
	code, err := doRun(g, args)
	if err != nil {
		fmt.Fprintf(g.stderr, "crun-lite run: %v\n", err)
	}
	if code != 0 {
		os.Exit(code)
	}
	return nil
}

func doRun(g *globals, args []string) (int, error) {
	s, err := g.store()
	if err != nil {
		return rt.ExitRunner, err
	}
	stdio := rt.Stdio{In: os.Stdin, Out: fileOr(g.stdout, os.Stdout), Err: fileOr(g.stderr, os.Stderr)}
	seccomp, err := parseSecurityOpts(runOpts.securityOpts)
	if err != nil {
		return rt.ExitRunner, err
	}
	if runOpts.bundle != "" {
		if len(runOpts.securityOpts) > 0 {
			return rt.ExitRunner, fmt.Errorf("--security-opt does not go with -b: the bundle's config.json has linux.seccomp")
		}
		if len(args) != 1 {
			return rt.ExitRunner, fmt.Errorf("with -b, want one container ID")
		}
		return rt.RunBundle(s.Root(), args[0], rt.BundleOptions{Bundle: runOpts.bundle, Stdio: stdio, Warn: g.warn})
	}
	if len(args) == 0 {
		return rt.ExitRunner, fmt.Errorf("want IMAGE [CMD [ARG...]]")
	}
	mem, err := parseBytes(runOpts.memory)
	if err != nil {
		return rt.ExitRunner, fmt.Errorf("--memory %s: %v", runOpts.memory, err)
	}
	return rt.Run(s, rt.RunOptions{
		Image: args[0], Args: args[1:], Name: runOpts.name, Env: runOpts.env, Workdir: runOpts.workdir,
		User: runOpts.user, Hostname: runOpts.hostname, Volumes: runOpts.volumes, Net: runOpts.net, Publish: runOpts.publish,
		Memory: mem, PidsLimit: runOpts.pidsLimit, CPUs: runOpts.cpus, TTY: runOpts.tty,
		Remove: runOpts.rm, Rootless: runOpts.rootless, Init: runOpts.init, Seccomp: seccomp, Stdio: stdio, Warn: g.warn,
	})
}

// parseSecurityOpts reads --security-opt seccomp=unconfined|FILE, the
// only one we have: "" means docker's default profile.
func parseSecurityOpts(opts []string) (string, error) {
	seccomp := ""
	for _, o := range opts {
		v, ok := strings.CutPrefix(o, "seccomp=")
		if !ok || v == "" {
			return "", fmt.Errorf("--security-opt %s: want seccomp=unconfined or seccomp=FILE", o)
		}
		seccomp = v
	}
	return seccomp, nil
}

// fileOr returns w when it is a file (the container writes to it directly).
func fileOr(w any, def *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return def
}

// parseBytes reads 123, 64k, 512m, 1g (binary units, as docker).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	// docker's parser for -m: "512m", "512mb", "1.5g", "100k", "4096"
	// (binary multiples, case-insensitive).
	n, err := units.RAMInBytes(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size (want BYTES, or a number with k, m, g or t, as 512m, 512mb or 1.5g)")
	}
	return n, nil
}
