package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/unionfsd/unionfsd/internal/mangen"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated man page and completions")

// TestGeneratedDocs keeps docs/man/crun-lite.1 and completions/ in step
// with the registered commands and their flags: it fails when they are
// stale. Regenerate with
//
//	go test ./cmd/crun-lite -run TestGeneratedDocs -update
func TestGeneratedDocs(t *testing.T) {
	top := globalFlagSet()
	page := mangen.Page{Name: "crun-lite", Section: 1, Source: "crun-lite", Help: mainHelp(top)}
	names := commandNames()
	for _, n := range names {
		page.Subs = append(page.Subs, mangen.Sub{Name: n, Help: commandHelp(commands[n])})
	}
	comp := mangen.Completion{Name: "crun-lite", Flags: top, Subcommands: names}
	files := map[string][]byte{
		"docs/man/crun-lite.1":            page.Man(),
		"completions/bash/crun-lite":      comp.Bash(),
		"completions/zsh/_crun-lite":      comp.Zsh(),
		"completions/fish/crun-lite.fish": comp.Fish(),
	}
	stale, err := mangen.Sync(filepath.Join("..", ".."), files, *updateDocs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range stale {
		t.Errorf("%s is stale or missing; regenerate: go test ./cmd/crun-lite -run TestGeneratedDocs -update", rel)
	}
	for _, n := range []string{"run", "create", "exec", "pull", "explain"} {
		if !strings.Contains(string(page.Man()), `.SH "CRUN\-LITE `+strings.ToUpper(n)+`"`) &&
			!strings.Contains(string(page.Man()), `.SH "CRUN-LITE `+strings.ToUpper(n)+`"`) {
			t.Errorf("the man page has no section for %s", n)
		}
	}
}

// globalFlagSet is the flag set of crun-lite before the command, with the
// store's default written for every user (it depends on who runs).
func globalFlagSet() *pflag.FlagSet {
	var g globals
	fs := pflag.NewFlagSet("crun-lite", pflag.ContinueOnError)
	g.addFlags(fs)
	fs.BoolP("help", "h", false, "show help")
	fs.Lookup("root").DefValue = "/var/lib/crun-lite as root, else $XDG_DATA_HOME/crun-lite"
	return fs
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// mainHelp is the top of the page: what printUsage says, with the flags.
func mainHelp(top *pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("crun-lite - container images on a content-addressed store, run on unionfsd; runc's command line for OCI bundles\n\n")
	b.WriteString("Usage:\n  crun-lite [GLOBAL FLAGS] COMMAND [ARGS...]\n  crun-lite COMMAND --help\n\n")
	b.WriteString("Global flags:\n" + top.FlagUsages() + "\n")
	b.WriteString("Commands:\n")
	for _, n := range commandNames() {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nExit status:\n  0 ok, 1 the operation failed, 2 bad command line, 3 image not found;\n" +
		"  run: the container's own status, 125-127 as docker for errors before it runs.\n")
	return b.String()
}

// commandHelp is one command's section: its synopsis and its own flags
// (the global flags are accepted after the command name too).
func commandHelp(c *command) string {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	help := fmt.Sprintf("crun-lite %s - %s\n\nUsage:\n  crun-lite %s %s\n", c.name, c.summary, c.name, c.args)
	if fs.HasFlags() {
		help += "\nFlags:\n" + fs.FlagUsages()
	}
	return help
}
