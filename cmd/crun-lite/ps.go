package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"

	rt "github.com/unionfsd/unionfsd/runtime"
)

var psNoTrunc, psQuiet, psAll bool

func init() {
	register(&command{
		name:    "ps",
		args:    "",
		summary: "list containers (running and stopped)",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&psNoTrunc, "no-trunc", false, "print full IDs and commands")
			fs.BoolVarP(&psQuiet, "quiet", "q", false, "print only container IDs (as docker ps -q)")
			fs.BoolVarP(&psAll, "all", "a", false, "accepted for docker's ps -a: stopped containers are always listed")
		},
		run: runPs,
	})
}

func runPs(g *globals, args []string) error {
	if len(args) != 0 {
		return usagef("takes no arguments")
	}
	s, err := g.store()
	if err != nil {
		return err
	}
	infos, err := rt.List(s.Root())
	if err != nil {
		return err
	}
	if psQuiet {
		for _, in := range infos {
			fmt.Fprintln(g.stdout, shortID(in.ID, psNoTrunc))
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER ID\tNAME\tIMAGE\tCOMMAND\tCREATED\tSTATUS")
	for _, in := range infos {
		id, cmd := in.ID, strings.Join(in.Command, " ")
		if !psNoTrunc {
			id = id[:min(12, len(id))]
			if len(cmd) > 30 {
				cmd = cmd[:29] + "…"
			}
		}
		image := in.Image
		if in.Kind == rt.KindBundle {
			image = "bundle:" + in.Bundle
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%q\t%s ago\t%s\n", id, in.Name, image, cmd, ago(in.Created), statusText(in.State))
	}
	return tw.Flush()
}

// statusText reads like docker's STATUS column.
func statusText(st *rt.State) string {
	switch st.Status {
	case specs.StateRunning:
		return "Up " + ago(st.Started)
	case specs.StateCreated:
		return "Created"
	case specs.StateCreating:
		return "Creating"
	}
	if st.ExitCode == nil {
		return "Exited"
	}
	return fmt.Sprintf("Exited (%d) %s ago", *st.ExitCode, ago(st.Finished))
}

// ago is a rough human duration since t.
func ago(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
