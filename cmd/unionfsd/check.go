package main

import (
	"fmt"
	"path/filepath"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/unionfs"
)

const checkHelp = `unionfsd check - find (and repair) damage in a union's upper and work dirs

Usage:
  unionfsd check [--repair] UPPERDIR WORKDIR [LOWER...]

Finds what a crash or a tool that does not know the union's rules can leave:
  temp-file               a copy-up temp entry (cow-tmp-*) left in WORKDIR
  workdir-fs              WORKDIR on another filesystem than UPPERDIR
  whiteout-beside-entry   .wh.NAME next to NAME itself (the entry wins)
  whiteout-hides-nothing  a whiteout for a name no lower layer shows
  metacopy-lower-gone     a metacopy entry whose data is in no lower layer
  overlay-format          kernel-overlay whiteouts (char 0/0) or opaque
                          xattrs in an upper that also has OCI ones
Each finding comes with its fix; only --repair applies the fixes, and only
while no mount uses UPPERDIR. LOWERs (top first) are needed for the checks
against the lower layers; without them the lowers of a live mount of
UPPERDIR are used, if any. The default WORKDIR of a unionfs-fuse style
mount is UPPERDIR/.wh..wh.unionfsd.work.

Exit status: 0 nothing (left) to fix, 1 the check failed, 2 bad command
line, 4 problems found and not (all) repaired.

Flags:
      --repair   apply the fixes
`

// exitProblems: check found problems that are still there (fsck's 4).
const exitProblems = 4

func init() { subcommands["check"] = checkCommand }

func checkCommand(args []string) int {
	var repair, help bool
	fs := newSubFlagSet("check", &help)
	fs.BoolVar(&repair, "repair", false, "apply the fixes")
	if err := fs.Parse(args); err != nil {
		return printError(usagef("check: %v", err))
	}
	if help {
		fmt.Print(checkHelp)
		return exitOK
	}
	if fs.NArg() < 2 {
		return printError(usagef("check: want UPPERDIR WORKDIR [LOWER...] (see unionfsd check --help)"))
	}
	cfg, err := checkTarget(fs.Args(), repair)
	if err != nil {
		return printError(err)
	}
	res, err := inspect.Check(cfg)
	if err != nil {
		return printError(err)
	}
	return reportFindings(res, repair)
}

// checkTarget builds the union to check and refuses repairs under a live mount.
func checkTarget(args []string, repair bool) (unionfs.Config, error) {
	upper, err := checkMountDir(args[0])
	if err != nil {
		return unionfs.Config{}, err
	}
	if err := notAUnion(upper); err != nil {
		return unionfs.Config{}, err
	}
	work, err := filepath.Abs(args[1])
	if err != nil {
		return unionfs.Config{}, fmt.Errorf("%s: %w", args[1], err)
	}
	if real, err := filepath.EvalSymlinks(work); err == nil {
		work = real
	}
	cfg := unionfs.Config{Upper: upper, Work: work, Lowers: args[2:]}
	if who, busy := inspect.UpperInUse(upper); busy {
		if repair {
			return cfg, fmt.Errorf("%s: in use by the %s: unmount it before --repair", upper, who)
		}
		fmt.Printf("note: %s is in use by the %s: what a running copy-up holds may show as a problem\n", upper, who)
	}
	if len(cfg.Lowers) == 0 {
		if r, ok := inspect.RecordForUpper(upper); ok {
			cfg.Lowers = r.Lowers
			fmt.Printf("note: lower layers taken from the mount at %s\n", r.Mountpoint)
		}
	}
	return cfg, nil
}

// reportFindings prints each finding (and repairs it) and returns the exit
// status.
func reportFindings(res *inspect.CheckResult, repair bool) int {
	for _, n := range res.Notes {
		fmt.Println("note: " + n)
	}
	left := 0
	for _, f := range res.Findings {
		fmt.Printf("%s %s\n  %s\n  fix: %s\n", f.Kind, f.Path, f.Problem, f.Fix)
		switch {
		case !repair:
			left++
		case !f.Repairable():
			fmt.Println("  not repaired: needs you")
			left++
		default:
			if err := f.Repair(); err != nil {
				fmt.Println("  not repaired: " + oneLine(err.Error()))
				left++
			} else {
				fmt.Println("  repaired")
			}
		}
	}
	return summarize(len(res.Findings), left, repair, res.Findings)
}

func summarize(found, left int, repair bool, fs []*inspect.Finding) int {
	switch {
	case found == 0:
		fmt.Println("no problems found")
		return exitOK
	case left == 0:
		fmt.Printf("%s found, all repaired\n", plural(found, "problem"))
		return exitOK
	case repair:
		fmt.Printf("%s found, %d left\n", plural(found, "problem"), left)
	default:
		fixable := 0
		for _, f := range fs {
			if f.Repairable() {
				fixable++
			}
		}
		fmt.Printf("%s found; unionfsd check --repair fixes %d of them\n", plural(found, "problem"), fixable)
	}
	return exitProblems
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
