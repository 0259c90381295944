// Command crun-lite is a tiny container tool: it imports images from files
// (docker-save tarballs, OCI layouts), stores them content-addressed, and
// exports and commits them. Each subcommand lives in its own file and
// registers itself in commands; the runner adds its own the same way.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/layers"
	rt "github.com/unionfsd/unionfsd/runtime"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed (bad archive, digest mismatch, I/O, ...)
	exitUsage    = 2 // bad command line
	exitNotFound = 3 // the named image does not exist
)

// command is one subcommand.
type command struct {
	name    string
	args    string // usage synopsis after the name
	summary string
	// flags adds the command's flags; may be nil.
	flags func(fs *pflag.FlagSet)
	// run does the work with the positional arguments.
	run func(g *globals, args []string) error
}

// commands is filled by init functions in the command files.
var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// globals are the flags every command accepts.
type globals struct {
	root   string
	quiet  bool
	stdout io.Writer
	stderr io.Writer
	runc   runcGlobals // runc's global flags (runc_cli.go)
}

func (g *globals) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&g.root, "root", layers.DefaultRoot(), "image store directory")
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "no progress bars or warnings")
	g.runc.addFlags(fs)
	fs.BoolVarP(&g.runc.version, "version", "v", false, "print the version")
}

// store opens the image store.
func (g *globals) store() (*layers.Store, error) { return layers.Open(g.root) }

// warn prints a warning line unless --quiet.
func (g *globals) warn(msg string) {
	if !g.quiet && !g.runc.log("warning", msg) {
		fmt.Fprintln(g.stderr, "warning:", msg)
	}
}

// usageError marks an error as a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	// A re-executed crun-lite (supervisor, container init, exec stage) is
	// not a command line: dispatch it first, as runc's init does.
	if rt.IsStage(os.Args) {
		os.Exit(rt.RunStage(os.Args))
	}
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain parses global flags, picks the command and maps errors to exit codes.
func runMain(argv []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	top := pflag.NewFlagSet("crun-lite", pflag.ContinueOnError)
	top.SetOutput(io.Discard)
	top.SetInterspersed(false)
	g.addFlags(top)
	help := top.BoolP("help", "h", false, "show help")
	if err := top.Parse(argv); err != nil {
		fmt.Fprintln(stderr, "crun-lite:", err)
		printUsage(stderr)
		return exitUsage
	}
	if g.runc.version {
		printVersion(stdout)
		return exitOK
	}
	rest := top.Args()
	if len(rest) == 0 && !*help {
		printUsage(stderr)
		return exitUsage
	}
	if *help || rest[0] == "help" {
		printUsage(stdout)
		return exitOK
	}
	cmd, ok := commands[rest[0]]
	if !ok {
		fmt.Fprintf(stderr, "crun-lite: unknown command %q\n", rest[0])
		printUsage(stderr)
		return exitUsage
	}
	return runCommand(cmd, g, rest[1:])
}

func runCommand(cmd *command, g *globals, argv []string) int {
	fs := pflag.NewFlagSet("crun-lite "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	// Global flags are accepted after the command name too, unless the
	// command gives the name its own meaning (docker's `images -q` and
	// `ps -q` print only IDs).
	fs.StringVar(&g.root, "root", g.root, "image store directory")
	if fs.Lookup("quiet") == nil {
		fs.BoolVarP(&g.quiet, "quiet", "q", g.quiet, "no progress bars or warnings")
	}
	g.runc.addFlags(fs)
	var help *bool
	if fs.ShorthandLookup("h") == nil {
		help = fs.BoolP("help", "h", false, "show help")
	} else {
		help = fs.Bool("help", false, "show help") // run -h is docker's --hostname
	}
	if err := fs.Parse(argv); err != nil {
		fmt.Fprintf(stderr(g), "crun-lite %s: %v\n", cmd.name, err)
		commandUsage(stderr(g), cmd, fs)
		return exitUsage
	}
	if *help {
		commandUsage(g.stdout, cmd, fs)
		return exitOK
	}
	err := g.runc.check()
	if err == nil {
		g.runc.logDebug(append([]string{cmd.name}, argv...))
		err = cmd.run(g, fs.Args())
	}
	if err != nil {
		g.runc.log("error", err.Error())
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(g.stderr, "crun-lite %s: %v\n", cmd.name, err)
		commandUsage(g.stderr, cmd, fs)
		return exitUsage
	case errors.Is(err, layers.ErrImageNotFound):
		fmt.Fprintf(g.stderr, "crun-lite %s: %v\n", cmd.name, err)
		return exitNotFound
	default:
		fmt.Fprintf(g.stderr, "crun-lite %s: %v\n", cmd.name, err)
		return exitFailure
	}
}

func stderr(g *globals) io.Writer { return g.stderr }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: crun-lite [--root DIR] [-q] COMMAND [ARGS...]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'crun-lite COMMAND --help' for a command's flags.")
}

func commandUsage(w io.Writer, cmd *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "usage: crun-lite %s %s\n  %s\n\nflags:\n%s", cmd.name, cmd.args, cmd.summary, fs.FlagUsages())
}
