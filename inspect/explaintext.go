package inspect

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/unionfsd/unionfsd/unionfs"
)

// WriteExplanation writes an explanation (unionfs.Explain) as a table, one
// row per layer, top first, then the answer. where names the union in the
// heading (a mountpoint, an image); "" leaves it out. unionfsd explain and
// crun-lite explain print this same table.
func WriteExplanation(w io.Writer, e *unionfs.Explanation, where string) {
	head := "path " + e.Path
	if where != "" {
		head += " in " + where
	}
	fmt.Fprintln(w, head)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  layer\tdir\thas\tstatus\twhy")
	for _, ls := range e.Layers {
		name := fmt.Sprint(ls.Layer)
		if ls.Upper {
			name += " (upper)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", name, ls.Dir, ls.Entry, ls.Status, ls.Why)
		for _, m := range ls.Marks {
			fmt.Fprintf(tw, "  \t\t\t\t+ %s\n", m)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "answer: "+e.Why)
}
