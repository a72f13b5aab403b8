package harness

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		lat  []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
	} {
		if got := percentile(tc.lat, tc.q); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.lat, tc.q, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	put, _ := WorkloadByName("put-256")
	load, _ := WorkloadByName("load-1m")
	rec := func(w string, sys System, run int, tput, rss float64, err string) Record {
		r := Record{Workload: w, Nodes: 1, System: sys, Run: run, Error: err}
		if err == "" {
			r.Result = &Result{Ops: 1, Metrics: map[string]float64{MetricThroughput: tput, MetricPeakRSS: rss, MetricErrors: 0}}
		}
		return r
	}
	records := []Record{
		rec("put-256", Coordd, 1, 1300, 20, ""), rec("put-256", Etcd, 1, 1000, 40, ""),
		rec("put-256", Coordd, 2, 1100, 22, ""), rec("put-256", Etcd, 2, 1000, 40, ""),
		rec("put-256", Coordd, 3, 1260, 21, ""), rec("put-256", Etcd, 3, 1000, 40, ""),
		rec("load-1m", Coordd, 1, 0, 0, "boom"), rec("load-1m", Etcd, 1, 500, 90, ""),
	}
	rep := Summarize([]Case{{put, 1}, {load, 1}}, records)
	find := func(w, metric string) Row {
		for _, r := range rep.Rows {
			if r.Workload == w && r.Metric == metric {
				return r
			}
		}
		t.Fatalf("no row %s %s in %+v", w, metric, rep.Rows)
		return Row{}
	}
	if r := find("put-256", MetricThroughput); r.Coordd != "1260" || r.Etcd != "1000" || r.Ratio != "1.26" || r.Verdict != "pass" {
		t.Errorf("put-256 throughput row = %+v, want median 1260 vs 1000, 1.26, pass", r)
	}
	if r := find("put-256", MetricPeakRSS); r.Ratio != "0.53" || r.Target != "" {
		t.Errorf("put-256 RSS row = %+v, want ratio 0.53 and no target", r)
	}
	if r := find("load-1m", MetricPeakRSS); r.Coordd != "error" || r.Verdict != "fail" {
		t.Errorf("load-1m RSS row = %+v, want coordd error and fail", r)
	}
	if r := find("load-1m", "failed runs"); r.Coordd != "1/1" || r.Etcd != "0/1" {
		t.Errorf("failed runs row = %+v", r)
	}
	for _, r := range rep.Rows {
		if r.Metric == MetricErrors {
			t.Errorf("errors row shown although no run had errors: %+v", r)
		}
	}
	var b bytes.Buffer
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| put-256 | 1 | throughput ops/s | 1260 | 1000 | 1.26 | ≥1.20 | pass |", "Targets: 1 pass, 2 fail", "load-1m, 1 node(s), coordd, run 1: boom"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPlan(t *testing.T) {
	cases, err := Plan(nil, []int{3, 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cases {
		if c.Nodes == 3 {
			got = append(got, c.Workload.Name)
		}
	}
	if strings.Join(got, ",") != "put-256,leader-kill" || cases[0].Nodes != 1 || len(cases) != 12 {
		t.Errorf("quick plan: %d cases, 3-node %v", len(cases), got)
	}
	if _, err := Plan([]string{"nope"}, []int{1}, false); err == nil {
		t.Error("unknown workload accepted")
	}
	if _, err := Plan([]string{"leader-kill"}, []int{1}, false); err == nil {
		t.Error("leader-kill planned on one node")
	}
}

func TestReadUsage(t *testing.T) {
	u, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSS < 1<<20 || u.CPU < 0 {
		t.Errorf("own usage %+v: want a peak RSS of at least 1 MiB", u)
	}
}
