package main

import (
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/unionfsd/unionfsd/internal/mangen"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated man page and completions")

// TestGeneratedDocs keeps docs/man/unionfsd.1 and completions/ in step with
// --help and the flag set: it fails when they are stale. Regenerate with
//
//	go test ./cmd/unionfsd -run TestGeneratedDocs -update
func TestGeneratedDocs(t *testing.T) {
	page := mangen.Page{Name: "unionfsd", Section: 1, Source: "unionfsd", Help: helpText,
		Subs: []mangen.Sub{{Name: "explain", Help: explainHelp}, {Name: "diff", Help: diffHelp}, {Name: "check", Help: checkHelp}}}
	comp := mangen.Completion{Name: "unionfsd", Flags: newFlagSet(&flagValues{}),
		Subcommands: []string{"explain", "diff", "check"}, OptionFlag: "o", OptionKeys: mountOptionKeys(helpText)}
	files := map[string][]byte{
		"docs/man/unionfsd.1":            page.Man(),
		"completions/bash/unionfsd":      comp.Bash(),
		"completions/zsh/_unionfsd":      comp.Zsh(),
		"completions/fish/unionfsd.fish": comp.Fish(),
	}
	stale, err := mangen.Sync(filepath.Join("..", ".."), files, *updateDocs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range stale {
		t.Errorf("%s is stale or missing; regenerate: go test ./cmd/unionfsd -run TestGeneratedDocs -update", rel)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		script := string(comp.Bash()) + `COMP_WORDS=(unionfsd -o lowerdir=/x,up); COMP_CWORD=2; _unionfsd; echo "${COMPREPLY[@]}"`
		out, err := exec.Command(bash, "-c", script).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "lowerdir=/x,upperdir=" {
			t.Errorf("bash completion of \"-o lowerdir=/x,up\": %q (%v)", out, err)
		}
	}
	for _, k := range []string{"lowerdir=", "upperdir=", "workdir=", "ro", "allow_other", "squash_to_root", "uidmapping=", "negative_timeout="} {
		if !slices.Contains(comp.OptionKeys, k) {
			t.Errorf("-o keys for completion miss %q: %v", k, comp.OptionKeys)
		}
	}
}

// mountOptionKeys lists the -o keys the help's "Mount options (-o):"
// block names at the start of its entries ("key" or "key=").
func mountOptionKeys(help string) []string {
	_, block, _ := strings.Cut(help, "Mount options (-o):\n")
	block, _, _ = strings.Cut(block, "\n\n")
	key := regexp.MustCompile(`^([a-z_]+)(=?)`)
	seen := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue // a continuation line
		}
		entry, _, _ := strings.Cut(strings.TrimSpace(line), "  ")
		// The keys lead the entry; the first other word ends them.
		for _, tok := range strings.FieldsFunc(entry, func(r rune) bool { return r == ' ' || r == ',' }) {
			m := key.FindStringSubmatch(tok)
			if m == nil || (len(m[0]) != len(tok) && m[2] != "=") {
				break
			}
			seen[m[1]+m[2]] = true
		}
	}
	var keys []string
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
