package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/layers"
)

// RunOptions are the flags of `crun-lite run IMAGE [CMD [ARG...]]`.
type RunOptions struct {
	Image     string
	Args      []string // CMD [ARG...]: replaces the image's Cmd
	Name      string
	Env       []string // K=V, or K to pass the caller's value
	Workdir   string
	User      string // USER[:GROUP] or UID[:GID]
	Hostname  string
	Volumes   []string // HOST:CTR[:ro|rw]
	Net       string   // "none" (default), "host" or "bridge"
	Publish   []string // -p [IP:]HOSTPORT:CONTAINERPORT[/udp], with bridge
	Memory    int64    // bytes, 0: no limit
	PidsLimit int64    // 0: no limit
	CPUs      float64  // 0: no limit
	TTY       bool
	Remove    bool
	Rootless  bool   // user namespace even when run by root
	Init      bool   // a reaper as PID 1 (see reaper.go)
	Seccomp   string // "": docker's default profile, SeccompUnconfined, or a profile file
	Stdio     Stdio
	Warn      func(string)
}

// minMemory is the smallest memory limit accepted (docker's and podman's).
const minMemory = 6 << 20

// Run creates a container from a stored image and runs it in the
// foreground. It returns the container's exit status: the command's, 128+N
// when a signal N killed it, 125-127 when it could not run (with err set).
func Run(store *layers.Store, o RunOptions) (int, error) {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	c, spec, err := createFromImage(store, o)
	if err != nil {
		err = withCode(err, ExitRunner)
		return ExitCodeOf(err), err
	}
	code, err := launch(launchOpts{c: c, spec: spec, stdio: o.Stdio, warn: o.Warn})
	if o.Remove {
		// The supervisor removes the container; this covers a supervisor
		// that never got that far.
		if _, statErr := os.Stat(c.dir); statErr == nil {
			cleanupNetwork(c)
			removeTree(c, c.dir)
		}
	}
	return code, err
}

// createFromImage checks the options, creates the container dir with its
// record, OCI config, upper, work and init dirs.
func createFromImage(store *layers.Store, o RunOptions) (*Container, *specs.Spec, error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	vols, err := parseVolumes(o.Volumes)
	if err != nil {
		return nil, nil, err
	}
	if err := checkFuse(); err != nil {
		return nil, nil, err
	}
	sc, err := seccompFor(o.Seccomp, runCaps)
	if err != nil {
		return nil, nil, err
	}
	img, err := store.Image(o.Image)
	if err != nil {
		if errors.Is(err, layers.ErrImageNotFound) {
			return nil, nil, runnerErr("image %s: not in the store (import it first: crun-lite import FILE)", o.Image)
		}
		return nil, nil, runnerErr("image %s: %v", o.Image, err)
	}
	args := commandOf(img.Config.Config, o.Args)
	if len(args) == 0 {
		return nil, nil, runnerErr("image %s has no Entrypoint or Cmd and no command was given", o.Image)
	}
	c := &Container{Kind: KindImage, Name: o.Name, Image: o.Image, ImageID: img.ID.String(),
		Lowers: store.LayerDirs(img), Command: args, MkWorkdir: true, Remove: o.Remove, Init: o.Init}
	c.User = firstOf(o.User, img.Config.Config.User, "0")
	if o.Rootless && mapsToHostRoot() {
		return nil, nil, runnerErr("--rootless as root: the container's root would be the host's root; run crun-lite as an unprivileged user for a rootless container, or leave --rootless out")
	}
	if o.Rootless || os.Geteuid() != 0 {
		c.Rootless = true
		c.UIDMap, c.GIDMap = rootlessMaps(o.Warn)
	}
	netCfg, err := bridgeConfigOf(c, o)
	if err != nil {
		return nil, nil, err
	}
	if err := create(store.Root(), c); err != nil {
		return nil, nil, err
	}
	if netCfg != nil {
		if err := writeJSON(c.Path(netConfigFile), netCfg); err != nil {
			os.RemoveAll(c.dir)
			return nil, nil, runnerErr("%v", err)
		}
	}
	spec, err := c.prepareImage(img.Config.Config, o, args, vols, sc)
	if err != nil {
		os.RemoveAll(c.dir)
		return nil, nil, err
	}
	return c, spec, nil
}

// check validates the options that need no file system.
func (o *RunOptions) check() error {
	switch o.Net {
	case "", "none", "host", "bridge":
	default:
		return runnerErr("--network %s: want none, host or bridge", o.Net)
	}
	if len(o.Publish) > 0 && o.Net != "bridge" {
		return runnerErr("-p needs --network bridge (the %s network has nothing to publish to)", firstOf(o.Net, "none"))
	}
	if o.Memory != 0 && o.Memory < minMemory {
		return runnerErr("--memory %d: the minimum memory limit is 6MB", o.Memory)
	}
	if o.PidsLimit < 0 || o.Memory < 0 || o.CPUs < 0 {
		return runnerErr("limits must not be negative")
	}
	if o.Workdir != "" && !filepath.IsAbs(o.Workdir) {
		return runnerErr("-w %s: the working dir must be an absolute path", o.Workdir)
	}
	if o.User != "" {
		if err := checkUserSyntax(o.User); err != nil {
			return runnerErr("-u: %v", err)
		}
	}
	return nil
}

// checkFuse makes sure the union can be mounted before anything is created.
func checkFuse() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return runnerErr("cannot open /dev/fuse: %v (modprobe fuse; rootless needs it world-accessible: chmod 0666 /dev/fuse)", unwrapPath(err))
	}
	return f.Close()
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// commandOf is Entrypoint + (args or Cmd), as docker builds it.
func commandOf(cfg v1.ImageConfig, args []string) []string {
	out := append([]string(nil), cfg.Entrypoint...)
	if len(args) > 0 {
		return append(out, args...)
	}
	return append(out, cfg.Cmd...)
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// volume is one parsed -v.
type volume struct {
	host, ctr string
	ro        bool
}

// parseVolumes checks HOST:CTR[:ro|rw] specs: both absolute, HOST existing.
func parseVolumes(specsIn []string) ([]volume, error) {
	var out []volume
	for _, v := range specsIn {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, runnerErr("-v %s: want HOST:CONTAINER[:ro]", v)
		}
		vol := volume{host: filepath.Clean(parts[0]), ctr: filepath.Clean(parts[1])}
		if len(parts) == 3 {
			switch parts[2] {
			case "ro":
				vol.ro = true
			case "rw":
			default:
				return nil, runnerErr("-v %s: unknown option %q (want ro or rw)", v, parts[2])
			}
		}
		if !filepath.IsAbs(parts[0]) || !filepath.IsAbs(parts[1]) {
			return nil, runnerErr("-v %s: both paths must be absolute", v)
		}
		if vol.ctr == "/" {
			return nil, runnerErr("-v %s: cannot mount over the container's root", v)
		}
		if _, err := os.Stat(vol.host); err != nil {
			return nil, runnerErr("-v %s: host path %s: %v", v, vol.host, unwrapPath(err))
		}
		out = append(out, vol)
	}
	return out, nil
}

// prepareImage makes upper/, work/, init/ and writes config.json.
func (c *Container) prepareImage(cfg v1.ImageConfig, o RunOptions, args []string, vols []volume, sc *specs.LinuxSeccomp) (*specs.Spec, error) {
	for _, d := range []string{upperDir, workDir, initDir} {
		if err := os.Mkdir(c.Path(d), 0o755); err != nil {
			return nil, runnerErr("create %s: %v", c.Path(d), err)
		}
	}
	hostname := firstOf(o.Hostname, c.ID[:12])
	if err := writeEtcFiles(c.Path(initDir), c.Lowers, hostname, o.Net == "host"); err != nil {
		return nil, err
	}
	spec := imageSpec(c, cfg, o, args, vols, hostname)
	spec.Linux.Seccomp = sc
	if err := writeJSON(c.Path(configFile), spec); err != nil {
		return nil, err
	}
	return spec, c.writeState(&State{Status: specs.StateCreating})
}

// imageSpec is the OCI config of an image container.
func imageSpec(c *Container, cfg v1.ImageConfig, o RunOptions, args []string, vols []volume, hostname string) *specs.Spec {
	hostNet := o.Net == "host"
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal:        o.TTY,
			Args:            args,
			Env:             buildEnv(cfg.Env, o.Env, hostname, o.TTY),
			Cwd:             firstOf(o.Workdir, cfg.WorkingDir, "/"),
			Capabilities:    capSet(runCaps),
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: c.Path(mergedDir)},
		Hostname: hostname,
		Mounts:   append(defaultMounts(c.Rootless && hostNet, c.Rootless && !idMapped(c.GIDMap, 5)), volumeMounts(vols)...),
		Linux: &specs.Linux{
			MaskedPaths:   append([]string(nil), maskedPaths...),
			ReadonlyPaths: append([]string(nil), readonlyPaths...),
			Resources:     resourcesOf(o),
		},
	}
	ns := []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace}
	if !hostNet {
		ns = append(ns, specs.NetworkNamespace)
	}
	if c.Rootless {
		ns = append(ns, specs.UserNamespace)
		spec.Linux.UIDMappings, spec.Linux.GIDMappings = c.UIDMap, c.GIDMap
	}
	for _, t := range ns {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: t})
	}
	return spec
}

// buildEnv merges the image's environment with -e flags (which win), and
// adds PATH, HOSTNAME and, with a terminal, TERM when missing.
func buildEnv(image, flags []string, hostname string, tty bool) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, e := range image {
		k, v, _ := strings.Cut(e, "=")
		set(k, v)
	}
	for _, e := range flags {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			// -e K passes the caller's value, if it has one.
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		set(k, v)
	}
	defaults := [][2]string{{"PATH", strings.TrimPrefix(defaultPath, "PATH=")}, {"HOSTNAME", hostname}}
	if tty {
		defaults = append(defaults, [2]string{"TERM", "xterm"})
	}
	for _, d := range defaults {
		if _, ok := vals[d[0]]; !ok {
			set(d[0], d[1])
		}
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + vals[k]
	}
	return out
}

// volumeMounts turns -v into bind mounts, parents before children.
func volumeMounts(vols []volume) []specs.Mount {
	sorted := append([]volume(nil), vols...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return strings.Count(sorted[i].ctr, "/") < strings.Count(sorted[j].ctr, "/")
	})
	var out []specs.Mount
	for _, v := range sorted {
		opts := []string{"rbind", "rprivate"}
		if v.ro {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: v.ctr, Type: "bind", Source: v.host, Options: opts})
	}
	return out
}

// resourcesOf turns --memory, --pids-limit and --cpus into cgroup limits.
func resourcesOf(o RunOptions) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if o.Memory > 0 {
		m := o.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if o.PidsLimit > 0 {
		p := o.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	if o.CPUs > 0 {
		period := uint64(100000)
		quota := int64(o.CPUs * float64(period))
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	return r
}

// writeEtcFiles fills the init layer: /etc/hosts, /etc/hostname and
// /etc/resolv.conf. It sits above the image layers, so the image is never
// touched and the files stay out of the upper dir (and out of commits)
// unless the container changes them. Its etc/ copies the owner and mode of
// the image's /etc so the merged /etc looks the same.
func writeEtcFiles(initDir string, lowers []string, hostname string, hostNet bool) error {
	etc := filepath.Join(initDir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		return runnerErr("create %s: %v", etc, err)
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
	if hostNet {
		if data, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(data)
		}
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	files := map[string]string{"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": string(resolv)}
	for name, content := range files {
		p := filepath.Join(etc, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return runnerErr("write %s: %v", p, err)
		}
	}
	copyDirAttrs(etc, lowers)
	return nil
}

// copyDirAttrs gives dir the mode, owner and times of the topmost lower's
// etc dir.
func copyDirAttrs(dir string, lowers []string) {
	for _, l := range lowers {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(l, "etc"), &st) != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			os.Chmod(dir, os.FileMode(st.Mode&0o777))
			os.Lchown(dir, int(st.Uid), int(st.Gid))
			unix.UtimesNano(dir, []unix.Timespec{st.Atim, st.Mtim})
		}
		return
	}
}
