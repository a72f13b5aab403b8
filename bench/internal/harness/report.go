package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Row is one line of the report: one metric of one case.
type Row struct {
	Workload string
	Nodes    int
	Metric   string
	// Coordd and Etcd are the medians over the successful runs, rendered;
	// "error" when every run of that system failed.
	Coordd, Etcd string
	// Ratio is coordd/etcd, or "" when either is missing.
	Ratio string
	// Target is the bound on Ratio, if any; Verdict is then "pass",
	// "fail" (also when coordd failed) or "n/a" (etcd failed).
	Target, Verdict string
}

// Failure is a failed run, listed under the table.
type Failure struct {
	Workload string
	Nodes    int
	System   System
	Run      int
	Error    string
}

// Report is the summary of a benchmark.
type Report struct {
	Rows     []Row
	Failures []Failure
}

// Summarize reports, for each case and metric, the median over the
// successful runs of each system, their ratio, and the target's verdict.
func Summarize(cases []Case, records []Record) Report {
	var rep Report
	for _, c := range cases {
		results := map[System][]*Result{}
		failed := map[System]int{}
		for _, rec := range records {
			if rec.Workload != c.Workload.Name || rec.Nodes != c.Nodes {
				continue
			}
			if rec.Error != "" {
				failed[rec.System]++
				rep.Failures = append(rep.Failures, Failure{rec.Workload, rec.Nodes, rec.System, rec.Run, rec.Error})
				continue
			}
			results[rec.System] = append(results[rec.System], rec.Result)
		}
		if len(results[Coordd])+len(results[Etcd])+failed[Coordd]+failed[Etcd] == 0 {
			continue // not run
		}
		rep.Rows = append(rep.Rows, caseRows(c, results, failed)...)
	}
	return rep
}

// caseRows returns the rows of one case.
func caseRows(c Case, results map[System][]*Result, failed map[System]int) []Row {
	var names []string
	for _, rs := range results {
		for _, r := range rs {
			for name := range r.Metrics {
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
	}
	// A target's row shows even if no run produced its metric.
	for _, t := range c.Workload.Targets {
		if (t.Nodes == 0 || t.Nodes == c.Nodes) && !slices.Contains(names, t.Metric) {
			names = append(names, t.Metric)
		}
	}
	sortMetrics(names)
	var rows []Row
	if failed[Coordd]+failed[Etcd] > 0 {
		runs := func(s System) string {
			return fmt.Sprintf("%d/%d", failed[s], failed[s]+len(results[s]))
		}
		rows = append(rows, Row{Metric: "failed runs", Coordd: runs(Coordd), Etcd: runs(Etcd)})
	}
	for _, name := range names {
		cv, cok := median(results[Coordd], name)
		ev, eok := median(results[Etcd], name)
		if name == MetricErrors && cv == 0 && ev == 0 {
			continue
		}
		row := Row{Metric: name, Coordd: cell(results[Coordd], cv, cok), Etcd: cell(results[Etcd], ev, eok)}
		ratio, rok := 0.0, cok && eok && ev != 0
		if rok {
			ratio = cv / ev
			row.Ratio = fmt.Sprintf("%.2f", ratio)
		}
		if t, ok := c.Workload.target(name, c.Nodes); ok {
			row.Target = t.String()
			switch {
			case rok && t.Met(ratio):
				row.Verdict = "pass"
			case rok || !cok:
				row.Verdict = "fail"
			default:
				row.Verdict = "n/a"
			}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 { // every run failed on both systems, and no target
		rows = append(rows, Row{Metric: "(no result)", Coordd: "error", Etcd: "error"})
	}
	for i := range rows {
		rows[i].Workload, rows[i].Nodes = c.Workload.Name, c.Nodes
	}
	return rows
}

// median returns the median of metric over the results that have it.
func median(rs []*Result, metric string) (float64, bool) {
	var vs []float64
	for _, r := range rs {
		if v, ok := r.Metrics[metric]; ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// cell renders a median, "error" if the system has no result, "—" if its
// results lack the metric.
func cell(rs []*Result, v float64, ok bool) string {
	switch {
	case len(rs) == 0:
		return "error"
	case !ok:
		return "—"
	}
	return formatValue(v)
}

// formatValue renders v with about three significant digits.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// WriteMarkdown writes the report as a markdown table, a tally of the
// targets, and the failed runs.
func (rep Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| workload | nodes | metric | coordd | etcd | ratio coordd/etcd | target | pass/fail |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---|\n")
	tally := map[string]int{}
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s |\n",
			r.Workload, r.Nodes, r.Metric, r.Coordd, r.Etcd, r.Ratio, r.Target, r.Verdict)
		if r.Verdict != "" {
			tally[r.Verdict]++
		}
	}
	fmt.Fprintf(&b, "\nTargets: %d pass, %d fail, %d n/a.\n", tally["pass"], tally["fail"], tally["n/a"])
	if len(rep.Failures) > 0 {
		b.WriteString("\nFailed runs:\n\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "- %s, %d node(s), %s, run %d: %s\n", f.Workload, f.Nodes, f.System, f.Run, firstLine(f.Error))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the raw records, indented.
func WriteJSON(w io.Writer, records []Record) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(records)
}
