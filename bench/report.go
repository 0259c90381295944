package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// tsvWriter writes the raw samples as they come, so an interrupted run
// keeps what it measured.
type tsvWriter struct {
	f *os.File
	w *bufio.Writer
}

func newTSV(p string) (*tsvWriter, error) {
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	t := &tsvWriter{f: f, w: bufio.NewWriter(f)}
	fmt.Fprintln(t.w, "round\tworkload\tmethod\tvalue\tunit\tok\tdaemon_peak_rss_kib\tdaemon_cpu_s\tnote")
	return t, nil
}

func (t *tsvWriter) write(s sample) {
	cpu := ""
	if s.hasCPU {
		cpu = fmt.Sprintf("%.2f", s.cpuSec)
	}
	fmt.Fprintf(t.w, "%d\t%s\t%s\t%.6f\t%s\t%v\t%d\t%s\t%s\n", s.round, s.workload, s.method, s.value, s.unit, s.ok, s.rssKiB, cpu, s.note)
	t.w.Flush()
}

func (t *tsvWriter) close() { t.w.Flush(); t.f.Close() }

// cell is the samples of one workload and method.
type cell struct {
	values []float64
	ok     bool
}

func (c *cell) median() float64 {
	v := append([]float64(nil), c.values...)
	sort.Float64s(v)
	n := len(v)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (c *cell) minMax() (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range c.values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

type table map[string]map[string]*cell // workload -> method -> cell

func tabulate(samples []sample) table {
	t := table{}
	for _, s := range samples {
		if t[s.workload] == nil {
			t[s.workload] = map[string]*cell{}
		}
		c := t[s.workload][s.method]
		if c == nil {
			c = &cell{ok: true}
			t[s.workload][s.method] = c
		}
		c.values = append(c.values, s.value)
		c.ok = c.ok && s.ok
	}
	return t
}

// ratio is method's median over base's, NaN when either is missing or failed.
func (t table) ratio(w, method, base string) float64 {
	a, b := t[w][method], t[w][base]
	if a == nil || b == nil || !a.ok || !b.ok {
		return math.NaN()
	}
	mb := b.median()
	if mb <= 0 {
		return math.NaN()
	}
	return a.median() / mb
}

func baseOf(w *workload) string {
	if w.base != "" {
		return w.base
	}
	return "overlay"
}

func writeReports(sum *summary) error {
	t := tabulate(sum.samples)
	svg := filepath.Join(sum.outDir, "ratios.svg")
	if err := os.WriteFile(svg, []byte(renderSVG(sum, t)), 0o644); err != nil {
		return err
	}
	sum.reportPath = filepath.Join(sum.outDir, "report.md")
	return os.WriteFile(sum.reportPath, []byte(renderMarkdown(sum, t, "ratios.svg")), 0o644)
}

func methodNames(ms []*method) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	return out
}

// variantNames lists the unionfsd-OPTION methods: the same daemon with one
// option changed.
func variantNames(ms []*method) []string {
	var out []string
	for _, m := range ms {
		if m.kind == "unionfsd" && strings.HasPrefix(m.name, "unionfsd-") {
			out = append(out, m.name)
		}
	}
	return out
}

func renderMarkdown(sum *summary, t table, svgName string) string {
	var b strings.Builder
	names := methodNames(sum.methods)
	si := sum.info
	fmt.Fprintf(&b, "# unionfsd benchmark\n\n")
	fmt.Fprintf(&b, "Run %s on %s (%d cores, %s RAM, kernel %s), data set on %s.\n",
		sum.started.Format("2006-01-02 15:04 MST"), si.CPU, si.Cores, si.Memory, si.Kernel, si.CacheFS)
	fmt.Fprintf(&b, "Scale **%s**, %d round(s), methods interleaved round by round; took %s.\n\n",
		sum.scale.Name, sum.opts.rounds, sum.elapsed.Round(1e9))
	fmt.Fprintf(&b, "Command: `go run ./bench %s`\n\n", strings.Join(commandArgs(sum.opts), " "))

	b.WriteString("## Ratio to kernel overlay (median of rounds; lower is better)\n\n")
	b.WriteString("RSS rows are ratios to fuse-overlayfs. `FAIL` marks a method that failed a correctness check in any round.\n\n")
	b.WriteString(ratioTable(sum, t, names, ""))
	fmt.Fprintf(&b, "\n![ratios to kernel overlay](%s)\n\n", svgName)

	b.WriteString("## unionfsd targets\n\n")
	b.WriteString(targetTable(sum, t))

	if cpu := cpuTable(sum, t, names); cpu != "" {
		b.WriteString("\n## Wall time and daemon CPU (medians)\n\n")
		b.WriteString("`wall / cpu` in seconds: cpu is the FUSE daemon's user+sys time over the timed part (from /proc/PID/stat, 10 ms ticks); ")
		b.WriteString("kernel methods have no daemon. On a shared machine the CPU time moves less with the load than the wall time.\n\n")
		b.WriteString(cpu)
	}

	b.WriteString("\n## Medians (min..max)\n\n")
	b.WriteString(mediansTable(sum, t, names))

	b.WriteString("\n## Ratio to native (plain dir)\n\n")
	b.WriteString(ratioTable(sum, t, names, "native"))

	if vs := variantNames(sum.methods); len(vs) > 0 && contains(names, "unionfsd") {
		b.WriteString("\n## unionfsd options: ratio to unionfsd with default options\n\n")
		b.WriteString("The cost (above 1x) or gain of each option, from samples of the same rounds.\n\n")
		b.WriteString(ratioTable(sum, t, vs, "unionfsd"))
	}

	b.WriteString("\n## Correctness\n\n")
	if len(sum.failures) == 0 {
		b.WriteString("Every check passed: merged entry counts, sizes and contents after copy-up, append and fio, untar and rm -rf results, and the lower layers' fingerprints (after every writing sample and every round).\n")
	} else {
		for _, f := range sum.failures {
			fmt.Fprintf(&b, "- FAIL %s\n", f)
		}
	}
	if len(sum.notes) > 0 {
		b.WriteString("\n## Skipped\n\n")
		for _, n := range sum.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\n## Workloads\n\n| workload | what | timed command |\n|---|---|---|\n")
	for _, w := range sum.workloads {
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", w.name, w.what, strings.ReplaceAll(w.cmd, "|", `\|`))
	}
	b.WriteString("\nEach sample runs on a fresh mount with an empty upper dir (native: the plain dir, restored between rounds). ")
	b.WriteString("untar and rm-rf samples have their upper and work dirs (native: untar's target) on a new ext4 (no journal) made for the sample, so every method creates on never-used inodes.\n")
	b.WriteString("\n## Methods\n\n| method | what | mount command |\n|---|---|---|\n")
	for _, m := range sum.methods {
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", m.name, m.desc, sum.mounts[m.name])
	}
	b.WriteString("\n## Machine and versions\n\n")
	fmt.Fprintf(&b, "- host %s: %s, %d cores, %s\n- kernel %s\n- data set filesystem: %s\n- %s\n", si.Host, si.CPU, si.Cores, si.Memory, si.Kernel, si.CacheFS, si.Go)
	for _, v := range si.Versions {
		fmt.Fprintf(&b, "- %s\n", v)
	}
	b.WriteString("\nRaw samples: `results.tsv`.\n")
	return b.String()
}

// commandArgs rebuilds the flags that differ from the defaults.
func commandArgs(o options) []string {
	var a []string
	if o.cache != "/var/tmp/unionfsd-bench" {
		a = append(a, "-cache "+o.cache)
	}
	a = append(a, "-scale "+o.scale, fmt.Sprintf("-rounds %d", o.rounds))
	if len(o.only) > 0 {
		a = append(a, "-only "+strings.Join(o.only, ","))
	}
	if len(o.methods) > 0 {
		a = append(a, "-methods "+strings.Join(o.methods, ","))
	}
	if o.profile {
		a = append(a, "-profile")
	}
	if !o.dropCaches {
		a = append(a, "-drop-caches=false")
	}
	return a
}

func ratioTable(sum *summary, t table, names []string, fixedBase string) string {
	var b strings.Builder
	var cols []string
	for _, n := range names {
		if n != "overlay" || fixedBase != "" {
			if n != fixedBase {
				cols = append(cols, n)
			}
		}
	}
	fmt.Fprintf(&b, "| workload | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---:|", len(cols)))
	for _, w := range sum.workloads {
		base := baseOf(w)
		if fixedBase != "" {
			if w.unit != "s" {
				continue
			}
			base = fixedBase
		}
		row := []string{w.name}
		if base != "overlay" && fixedBase == "" {
			row[0] += " (vs " + base + ")"
		}
		empty := true
		for _, n := range cols {
			c := ratioCell(t, w.name, n, base)
			row = append(row, c)
			empty = empty && c == ""
		}
		if !empty {
			fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
		}
	}
	return b.String()
}

func ratioCell(t table, w, m, base string) string {
	c := t[w][m]
	if c == nil {
		return ""
	}
	if !c.ok {
		return "FAIL"
	}
	r := t.ratio(w, m, base)
	if math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", r)
}

func mediansTable(sum *summary, t table, names []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| workload | unit | %s |\n|---|---|%s\n", strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	for _, w := range sum.workloads {
		row := []string{w.name, w.unit}
		for _, n := range names {
			c := t[w.name][n]
			if c == nil {
				row = append(row, "")
				continue
			}
			lo, hi := c.minMax()
			s := fmt.Sprintf("%s (%s..%s)", num(c.median()), num(lo), num(hi))
			if !c.ok {
				s = "FAIL " + s
			}
			row = append(row, s)
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	return b.String()
}

// cpuTable gives, for the workloads marked showCPU, each method's median
// wall time next to its daemon's median CPU time.
func cpuTable(sum *summary, t table, names []string) string {
	cpu := tabulate(cpuSamples(sum.samples))
	var b strings.Builder
	for _, w := range sum.workloads {
		if !w.showCPU || t[w.name] == nil {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "| workload | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
		}
		row := []string{w.name}
		for _, n := range names {
			c := t[w.name][n]
			switch {
			case c == nil:
				row = append(row, "")
			case !c.ok:
				row = append(row, "FAIL")
			case cpu[w.name][n] != nil:
				row = append(row, num(c.median())+" / "+num(cpu[w.name][n].median()))
			default:
				row = append(row, num(c.median()))
			}
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	return b.String()
}

// cpuSamples turns the samples with a daemon CPU time into samples of it.
func cpuSamples(samples []sample) []sample {
	var out []sample
	for _, s := range samples {
		if s.hasCPU {
			s.value, s.unit = s.cpuSec, "s"
			out = append(out, s)
		}
	}
	return out
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 0.01:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// targetTable compares unionfsd (or the workload's target methods) with
// the issues' goals: a ratio to a base method, or a bound on the value.
func targetTable(sum *summary, t table) string {
	var b strings.Builder
	b.WriteString("| workload | target | method | value | met |\n|---|---:|---|---:|---|\n")
	for _, w := range sum.workloads {
		if w.target == 0 && w.maxValue == 0 {
			continue
		}
		ms := w.targetMethods
		if len(ms) == 0 {
			ms = []string{"unionfsd"}
		}
		for _, m := range ms {
			goal, value, met := targetRow(t, w, m)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", w.name, goal, m, value, met)
		}
	}
	return b.String()
}

func targetRow(t table, w *workload, m string) (goal, value, met string) {
	c := t[w.name][m]
	v, limit := math.NaN(), w.maxValue
	if w.maxValue > 0 {
		goal = fmt.Sprintf("<= %g %s", w.maxValue, w.unit)
		if c != nil && c.ok {
			v = c.median()
		}
		value = fmt.Sprintf("%s %s", num(v), w.unit)
	} else {
		base := baseOf(w)
		goal, limit = fmt.Sprintf("<= %.1fx %s", w.target, base), w.target
		v = t.ratio(w.name, m, base)
		value = fmt.Sprintf("%.2fx", v)
	}
	switch {
	case c != nil && !c.ok:
		return goal, "", "FAIL (correctness)"
	case math.IsNaN(v):
		return goal, "n/a", "not measured"
	case v <= limit:
		return goal, value, "yes"
	}
	return goal, value, "no"
}

var palette = []string{"#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"}

// renderSVG draws a horizontal bar per method and workload: its median's
// ratio to the workload's base, on a log scale with 1x marked.
func renderSVG(sum *summary, t table) string {
	var methods []string
	for _, m := range methodNames(sum.methods) {
		if m != "overlay" {
			methods = append(methods, m)
		}
	}
	const left, width, barH, gap, top = 240.0, 560.0, 9.0, 8.0, 76.0
	lo, hi := 0.05, 10.0
	for w := range t {
		for _, m := range methods {
			for _, ws := range sum.workloads {
				if ws.name == w {
					if r := t.ratio(w, m, baseOf(ws)); !math.IsNaN(r) {
						hi = math.Max(hi, r*1.2)
						lo = math.Max(0.01, math.Min(lo, r/1.2)) // smaller ratios sit at the left edge
					}
				}
			}
		}
	}
	x := func(r float64) float64 {
		r = math.Max(r, lo)
		return left + width*(math.Log10(r)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	var rows strings.Builder
	y := top
	for _, w := range sum.workloads {
		present := 0
		for _, m := range methods {
			if t[w.name][m] != nil {
				present++
			}
		}
		if present == 0 {
			continue
		}
		label := w.name
		if baseOf(w) != "overlay" {
			label += " (vs " + baseOf(w) + ")"
		}
		fmt.Fprintf(&rows, `<text x="%g" y="%g" text-anchor="end" font-size="11">%s</text>`+"\n", left-6, y+float64(present)*barH/2+4, label)
		for i, m := range methods {
			c := t[w.name][m]
			if c == nil {
				continue
			}
			color := palette[i%len(palette)]
			r := t.ratio(w.name, m, baseOf(w))
			switch {
			case !c.ok:
				fmt.Fprintf(&rows, `<text x="%g" y="%g" font-size="9" fill="#c00">%s FAIL</text>`+"\n", left+2, y+barH-1, m)
			case math.IsNaN(r):
			default:
				fmt.Fprintf(&rows, `<rect x="%g" y="%g" width="%.1f" height="%g" fill="%s"><title>%s %s: %.2fx</title></rect>`+"\n",
					left, y, math.Max(1, x(r)-left), barH-1, color, w.name, m, r)
				fmt.Fprintf(&rows, `<text x="%.1f" y="%g" font-size="8">%s</text>`+"\n", x(r)+3, y+barH-1.5, ratioLabel(r))
			}
			y += barH
		}
		y += gap
	}
	h := y + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif">`+"\n", left+width+60, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">Median time relative to kernel overlay (log scale, lower is better), scale %s, %d round(s)</text>`+"\n", sum.scale.Name, sum.opts.rounds)
	for i, m := range methods {
		lx, ly := 10+(i%5)*150, 30+(i/5)*16
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`+"\n", lx, ly, palette[i%len(palette)], lx+14, ly+9, m)
	}
	for _, tick := range []float64{0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		if tick < lo || tick > hi {
			continue
		}
		stroke := "#ddd"
		if tick == 1 {
			stroke = "#000"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s"/>`+"\n", x(tick), top-4, x(tick), y, stroke)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="10" text-anchor="middle">%gx</text>`+"\n", x(tick), y+14, tick)
	}
	b.WriteString(rows.String())
	b.WriteString("</svg>\n")
	return b.String()
}

func ratioLabel(r float64) string {
	if r < 0.01 {
		return "&lt;0.01x" // SVG text: escaped
	}
	return fmt.Sprintf("%.2fx", r)
}

// replot redraws the chart of a results.tsv (of the given scale) into
// ratios.svg beside it, e.g. after a change to the chart.
func replot(tsvPath, scaleName string, rounds int) error {
	scale, err := scaleByName(scaleName)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(tsvPath)
	if err != nil {
		return err
	}
	sum := &summary{scale: scale, opts: options{rounds: rounds}}
	seenW, seenM := map[string]bool{}, map[string]bool{}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) < 7 {
			continue
		}
		var s sample
		fmt.Sscan(f[0], &s.round)
		fmt.Sscan(f[3], &s.value)
		s.workload, s.method, s.unit, s.ok = f[1], f[2], f[4], f[5] == "true"
		sum.samples = append(sum.samples, s)
		seenW[s.workload], seenM[s.method] = true, true
	}
	for _, w := range allWorkloads(scale) {
		if seenW[w.name] {
			sum.workloads = append(sum.workloads, w)
		}
	}
	for _, m := range allMethods() {
		if seenM[m.name] {
			sum.methods = append(sum.methods, m)
		}
	}
	svg := filepath.Join(filepath.Dir(tsvPath), "ratios.svg")
	return os.WriteFile(svg, []byte(renderSVG(sum, tabulate(sum.samples))), 0o644)
}
