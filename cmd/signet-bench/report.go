package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// report is the whole run.
type report struct {
	Connections int      `json:"connections"`
	Threads     int      `json:"wrk_threads"`
	Duration    string   `json:"duration_per_scenario"`
	Baseline    result   `json:"baseline"`
	Results     []result `json:"results"`
}

// judge records whether the run met its target.
func (r *result) judge(t target) {
	r.Target = t.String()
	r.TargetMet = r.Ratio >= t.minRatio && (t.maxP99Ms == 0 || r.P99Ms <= t.maxP99Ms) && r.PeakRSSMB <= t.maxRSSMB
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "Baseline (bare net/http, parse form, 300-byte JSON): %.0f req/s, p50 %.2f ms, p99 %.2f ms\n",
		rep.Baseline.RPS, rep.Baseline.P50Ms, rep.Baseline.P99Ms)
	fmt.Fprintf(w, "wrk: %d connections, %d threads, %s per scenario\n\n", rep.Connections, rep.Threads, rep.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\treq/s\tp50\tp99\tratio\tpeak RSS\ttarget\tstatus")
	for _, r := range rep.Results {
		verdict := "MISS"
		if r.TargetMet {
			verdict = "PASS"
		}
		if r.Status != "ok" {
			verdict = "-"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f ms\t%.2f ms\t%.2f\t%.0f MB\t%s %s\t%s\n",
			r.Scenario, r.RPS, r.P50Ms, r.P99Ms, r.Ratio, r.PeakRSSMB, verdict, r.Target, r.Status)
	}
	tw.Flush()
}
