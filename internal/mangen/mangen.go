// Package mangen turns a command's --help text and flag set into a man page
// and shell completions, so the three cannot drift apart: the binaries'
// tests regenerate them and fail when the checked-in files are stale.
package mangen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Page is one man page: the command's help and its subcommands' helps.
type Page struct {
	Name    string // "unionfsd"
	Section int    // 1
	Source  string // footer, e.g. the project name
	Help    string // the text --help prints; its first line is "NAME - SUMMARY"
	Subs    []Sub  // subcommands, in the order to show them
}

// Sub is a subcommand's name and --help text.
type Sub struct{ Name, Help string }

// Man renders the page as roff (man(7)). The help text's sections (a line
// at column 0 ending in ":", such as "Usage:" or "Flags:") become .SH
// sections, kept preformatted as --help lays them out; the lines between
// them are the description.
func (p Page) Man() []byte {
	var b bytes.Buffer
	name, summary, _ := strings.Cut(firstLine(p.Help), " - ")
	fmt.Fprintf(&b, ".TH %s %d \"\" \"%s\" \"User Commands\"\n", strings.ToUpper(p.Name), p.Section, escape(p.Source))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", escape(name), escape(summary))
	writeSections(&b, rest(p.Help), "DESCRIPTION")
	for _, s := range p.Subs {
		fmt.Fprintf(&b, ".SH \"%s %s\"\n", strings.ToUpper(p.Name), strings.ToUpper(s.Name))
		_, sum, _ := strings.Cut(firstLine(s.Help), " - ")
		fmt.Fprintf(&b, "%s\n", escape(sum))
		writeSections(&b, rest(s.Help), "")
	}
	return b.Bytes()
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
func rest(s string) string      { _, r, _ := strings.Cut(s, "\n"); return r }

// writeSections writes help text: "Title:" lines open a section (.SH when
// top is set, a bold .SS line otherwise); everything is preformatted. With
// top set, a paragraph at column 0 after a blank line leaves the section
// it follows: the first such text is the DESCRIPTION, later ones NOTES.
func writeSections(b *bytes.Buffer, text, top string) {
	open, blank, described, inNotes := false, false, false, false
	start := func(sh string) {
		inNotes = false
		if open {
			b.WriteString(".fi\n")
		}
		b.WriteString(sh + ".nf\n")
		open = true
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		h, isHeading := sectionTitle(line)
		switch {
		case isHeading && top != "" && h == "Usage":
			start(".SH SYNOPSIS\n")
			continue
		case isHeading && top != "":
			word, paren, _ := strings.Cut(h, " (") // "Mount options (-o)": keep -o as it is
			if paren != "" {
				paren = " (" + paren
			}
			start(fmt.Sprintf(".SH \"%s%s\"\n", escape(strings.ToUpper(word)), escape(paren)))
			continue
		case isHeading:
			start(fmt.Sprintf(".SS \"%s\"\n", escape(h)))
			continue
		case strings.TrimSpace(line) == "":
			blank = open
			continue
		case top != "" && (!open || blank) && line[0] != ' ' && inNotes:
			b.WriteString("\n")
		case top != "" && (!open || blank) && line[0] != ' ':
			if described {
				start(".SH NOTES\n")
				inNotes = true
			} else {
				start(".SH " + top + "\n")
				described = true
			}
		case !open:
			start("")
		case blank:
			b.WriteString("\n")
		}
		blank = false
		b.WriteString(escapeLine(line) + "\n")
	}
	if open {
		b.WriteString(".fi\n")
	}
}

// sectionTitle reports a section heading: a line at column 0, ending in
// ":", without other colons, of at most five words.
func sectionTitle(line string) (string, bool) {
	if line == "" || line[0] == ' ' || !strings.HasSuffix(line, ":") {
		return "", false
	}
	t := strings.TrimSuffix(line, ":")
	if strings.Contains(t, ":") || len(strings.Fields(t)) > 5 {
		return "", false
	}
	return t, true
}

// escape makes text safe inside a roff line.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, `"`, `\(dq`)
}

// escapeLine also keeps a leading '.' or "'" from being read as a request,
// and a leading "-" as it is.
func escapeLine(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// Completion is what a shell needs to complete a command line.
type Completion struct {
	Name        string
	Flags       *pflag.FlagSet
	Subcommands []string
	// OptionFlag is the flag that takes comma-separated KEY[=VALUE]
	// options ("o"), and OptionKeys its keys; "" for none.
	OptionFlag string
	OptionKeys []string
}

type flagInfo struct {
	long, short, usage string
	takesArg           bool
}

func (c Completion) flags() []flagInfo {
	var fs []flagInfo
	c.Flags.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		fs = append(fs, flagInfo{long: f.Name, short: f.Shorthand, usage: f.Usage,
			takesArg: f.Value.Type() != "bool" && f.NoOptDefVal == ""})
	})
	sort.Slice(fs, func(i, j int) bool { return fs[i].long < fs[j].long })
	return fs
}

// Bash renders a bash completion script (complete -F).
func (c Completion) Bash() []byte {
	var words []string
	for _, f := range c.flags() {
		words = append(words, "--"+f.long)
		if f.short != "" {
			words = append(words, "-"+f.short)
		}
	}
	fn := "_" + strings.ReplaceAll(c.Name, "-", "_")
	var b bytes.Buffer
	fmt.Fprintf(&b, "# bash completion for %s; generated from its flags and --help, do not edit.\n", c.Name)
	fmt.Fprintf(&b, "%s() {\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n", fn)
	if c.OptionFlag != "" {
		fmt.Fprintf(&b, "\tif [[ $prev == -%s ]]; then\n", c.OptionFlag)
		fmt.Fprintf(&b, "\t\tlocal head=\"\" last=$cur\n\t\t[[ $cur == *,* ]] && head=${cur%%,*}, last=${cur##*,}\n")
		fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen -P \"$head\" -W %q -- \"$last\"))\n", strings.Join(c.OptionKeys, " "))
		fmt.Fprintf(&b, "\t\tcompopt -o nospace 2>/dev/null\n\t\treturn\n\tfi\n")
	}
	fmt.Fprintf(&b, "\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(words, " "))
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "\tif [[ $COMP_CWORD == 1 ]]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\tfi\n", strings.Join(c.Subcommands, " "))
	}
	fmt.Fprintf(&b, "\tCOMPREPLY+=($(compgen -f -- \"$cur\"))\n}\ncomplete -F %s %s\n", fn, c.Name)
	return b.Bytes()
}

// Zsh renders a zsh completion function (#compdef).
func (c Completion) Zsh() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s; generated from its flags and --help, do not edit.\n\n", c.Name, c.Name)
	b.WriteString("_arguments -s \\\n")
	for _, f := range c.flags() {
		desc := zshQuote(f.usage)
		arg := ""
		if f.takesArg {
			arg = ":" + f.long + ":_files"
			if f.short == c.OptionFlag && c.OptionFlag != "" {
				arg = ":options:_values -s , option " + strings.Join(quoteAll(c.OptionKeys), " ")
			}
		}
		if f.short != "" {
			fmt.Fprintf(&b, "  '(-%s --%s)'{-%s,--%s}'[%s]%s' \\\n", f.short, f.long, f.short, f.long, desc, zshQuote(arg))
		} else {
			fmt.Fprintf(&b, "  '--%s[%s]%s' \\\n", f.long, desc, zshQuote(arg))
		}
	}
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "  '1: :(%s)' \\\n", strings.Join(c.Subcommands, " "))
	}
	b.WriteString("  '*:file:_files'\n")
	return b.Bytes()
}

// Fish renders fish completions (complete -c).
func (c Completion) Fish() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# fish completion for %s; generated from its flags and --help, do not edit.\n", c.Name)
	for _, f := range c.flags() {
		fmt.Fprintf(&b, "complete -c %s -l %s", c.Name, f.long)
		if f.short != "" {
			fmt.Fprintf(&b, " -s %s", f.short)
		}
		if f.takesArg {
			b.WriteString(" -r")
			if f.short == c.OptionFlag && c.OptionFlag != "" {
				fmt.Fprintf(&b, " -f -a %s", fishQuote(strings.Join(c.OptionKeys, " ")))
			}
		}
		fmt.Fprintf(&b, " -d %s\n", fishQuote(f.usage))
	}
	for _, s := range c.Subcommands {
		fmt.Fprintf(&b, "complete -c %s -n __fish_use_subcommand -a %s\n", c.Name, s)
	}
	return b.Bytes()
}

func zshQuote(s string) string {
	s = strings.ReplaceAll(s, "'", `'\''`)
	s = strings.ReplaceAll(s, "[", `\[`)
	return strings.ReplaceAll(s, "]", `\]`)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.TrimSuffix(s, "=")
	}
	return out
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// Sync compares generated files (paths relative to root) with the
// checked-in ones and returns those that differ or are missing; with
// update it writes them instead and returns none.
func Sync(root string, files map[string][]byte, update bool) ([]string, error) {
	var stale []string
	for rel, want := range files {
		path := filepath.Join(root, rel)
		if update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				return nil, err
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			stale = append(stale, rel)
		}
	}
	sort.Strings(stale)
	return stale, nil
}
