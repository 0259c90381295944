package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/unionfs"
)

// serveCommand is the hidden first argument that makes the bench binary a
// union daemon with a CPU profile: with -profile, the unionfsd methods run
// this instead of the unionfsd binary, which has no profiling hook. It mounts
// the same library with the same defaults as unionfsd.
const serveCommand = "__serve-union"

// serveUnion mounts "-o lowerdir=..,upperdir=..,workdir=..[,fsync=0] MNT"
// in the foreground, profiling until the mount goes away. It takes the
// flags of the unionfsd variants (see allMethods) except the trace ones.
func serveUnion(args []string) int {
	fs := pflag.NewFlagSet(serveCommand, pflag.ContinueOnError)
	cpu := fs.String("cpuprofile", "", "write a CPU profile here")
	mem := fs.String("memprofile", "", "write a heap profile here at exit")
	passthrough := fs.Bool("passthrough", true, "FUSE passthrough")
	timeout := fs.Duration("timeout", 0, "all kernel cache timeouts (0: unionfsd's defaults)")
	opts := fs.StringArrayP("option", "o", nil, "lowerdir=,upperdir=,workdir=,fsync=")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: bench "+serveCommand+" [--cpuprofile F] [--memprofile F] [--passthrough=false] [--timeout D] -o lowerdir=..,upperdir=..,workdir=..[,fsync=0][,metacopy=on] MNT")
		return 2
	}
	cfg := unionfs.DefaultConfig()
	cfg.Passthrough = *passthrough
	if *timeout > 0 {
		cfg.EntryTimeout, cfg.AttrTimeout, cfg.NegativeTimeout = *timeout, *timeout, *timeout
	}
	cfg.AllowOther = os.Geteuid() == 0 // as unionfsd does for root
	if err := applyServeOptions(&cfg, *opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	signal.Ignore(syscall.SIGINT) // the harness unmounts us
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	server, err := unionfs.Mount(fs.Arg(0), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	server.Wait()
	if *mem != "" {
		writeHeapProfile(*mem)
	}
	return 0
}

func applyServeOptions(cfg *unionfs.Config, opts []string) error {
	for _, o := range opts {
		for _, kv := range strings.Split(o, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "lowerdir":
				cfg.Lowers = strings.Split(v, ":")
			case "upperdir":
				cfg.Upper = v
			case "workdir":
				cfg.Work = v
			case "fsync":
				cfg.Fsync = v != "0"
			case "metacopy":
				cfg.Metacopy = v == "on" || v == "1"
			default:
				return fmt.Errorf("%s: option not supported by %s", kv, serveCommand)
			}
		}
	}
	return nil
}

func writeHeapProfile(p string) {
	f, err := os.Create(p)
	if err != nil {
		return
	}
	defer f.Close()
	runtime.GC()
	pprof.Lookup("heap").WriteTo(f, 0)
}
