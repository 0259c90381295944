// Command bench measures unionfsd against native dirs, kernel overlay,
// fuse-overlayfs and unionfs-fuse on one generated data set, checks that
// every method gives correct results, and writes a TSV, a markdown report
// and an SVG chart of the ratios to kernel overlay.
//
//	go run ./bench [-scale full] [-rounds 3] [-only find-cold,untar] [-methods overlay,unionfsd]
//
// It needs root (mounts, drop_caches). See docs/bench.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	cache      string
	out        string
	scale      string
	rounds     int
	only       []string
	methods    []string
	install    bool
	dropCaches bool
	profile    bool
	unionfsd   string // prebuilt binaries; built from the repo when empty
	crunLite   string
	repo       string
	quiet      bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveCommand {
		os.Exit(serveUnion(os.Args[2:]))
	}
	os.Exit(cli(os.Args[1:]))
}

func cli(args []string) int {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	sum, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("report: %s\n", sum.reportPath)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted; everything is unmounted, the report has the rounds done so far")
		return 130
	}
	if len(sum.failures) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d correctness failure(s):\n  %s\n", len(sum.failures), strings.Join(sum.failures, "\n  "))
		return 1
	}
	return 0
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.cache, "cache", "/var/tmp/unionfsd-bench", "data set cache dir (generated once per scale, then reused)")
	fs.StringVar(&o.out, "out", "", "results dir (default CACHE/results/DATE)")
	fs.StringVar(&o.scale, "scale", "full", "data set scale: tiny, small or full")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every workload once per method, methods interleaved")
	fs.Var((*listFlag)(&o.only), "only", "run only these workloads (comma list; see -list)")
	fs.Var((*listFlag)(&o.methods), "methods", "run only these methods (default: all available)")
	fs.BoolVar(&o.install, "install", true, "apt-get install missing peers (fuse-overlayfs, unionfs-fuse, fio)")
	fs.BoolVar(&o.dropCaches, "drop-caches", true, "drop the page cache before cold workloads")
	fs.BoolVar(&o.profile, "profile", false, "serve the unionfsd methods from this binary with a CPU and heap profile per sample (OUT/profiles)")
	fs.StringVar(&o.unionfsd, "unionfsd", "", "unionfsd binary to test (default: built from the repo)")
	fs.StringVar(&o.crunLite, "crun-lite", "", "crun-lite binary (default: built from the repo)")
	fs.StringVar(&o.repo, "repo", "", "repo to build from (default: the module containing the working dir)")
	list := fs.Bool("list", false, "list workloads and methods and exit")
	replotTSV := fs.String("replot", "", "only redraw ratios.svg from this results.tsv (with -scale and -rounds of its run)")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.rounds < 1 {
		return o, fmt.Errorf("-rounds %d: need at least 1", o.rounds)
	}
	s, err := scaleByName(o.scale)
	if err != nil {
		return o, err
	}
	if *replotTSV != "" {
		if err := replot(*replotTSV, o.scale, o.rounds); err != nil {
			return o, err
		}
		return o, flag.ErrHelp
	}
	if *list {
		printList(s)
		return o, flag.ErrHelp
	}
	return o, nil
}

func printList(s Scale) {
	fmt.Println("workloads:")
	for _, w := range allWorkloads(s) {
		fmt.Printf("  %-20s %s\n", w.name, w.what)
	}
	fmt.Println("methods:")
	for _, m := range allMethods() {
		fmt.Printf("  %-20s %s\n", m.name, m.desc)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// listFlag is a comma-separated list flag; repeating it adds to the list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
