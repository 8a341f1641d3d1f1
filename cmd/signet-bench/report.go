package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// report is the whole run.
type report struct {
	Connections int    `json:"connections"`
	Threads     int    `json:"wrk_threads"`
	Duration    string `json:"duration_per_scenario"`
	Rounds      int    `json:"rounds"`
	Replicas    int    `json:"replicas"`
	// Propagation is how long a revocation at one replica took to reach another (replicas > 1).
	Propagation *propagationResult `json:"revocation_propagation,omitempty"`
	// Audit is what `signet audit verify` found after the run: every audited request of every
	// replica, in every chain.
	Audit    *auditResult `json:"audit,omitempty"`
	Baseline result       `json:"baseline"`
	Results  []result     `json:"results"`
}

// judge records whether the run met its target.
func (r *result) judge(t target) {
	r.Target = t.String()
	r.TargetMet = r.Ratio >= t.minRatio && (t.maxP99Ms == 0 || r.P99Ms <= t.maxP99Ms) && r.PeakRSSMB <= t.maxRSSMB
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "Baseline (bare net/http, parse form, 300-byte JSON): %.0f req/s, p50 %.2f ms, p99 %.2f ms\n",
		rep.Baseline.RPS, rep.Baseline.P50Ms, rep.Baseline.P99Ms)
	fmt.Fprintf(w, "wrk: %d connections, %d threads, %s per scenario, %d round(s); each ratio is to the baseline measured just before it (medians over rounds)\n\n",
		rep.Connections, rep.Threads, rep.Duration, rep.Rounds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\treq/s\tp50\tp99\tbaseline req/s\tratio\tpeak RSS\ttarget\tstatus")
	for _, r := range rep.Results {
		verdict := "MISS"
		if r.TargetMet {
			verdict = "PASS"
		}
		if r.Status != "ok" {
			verdict = "-"
		}
		baseRPS, ratio := fmt.Sprintf("%.0f", r.BaselineRPS), fmt.Sprintf("%.2f", r.Ratio)
		if r.BaselineRPS == 0 {
			baseRPS, ratio = "-", "-" // a Go-driven conversation: not divided by wrk's baseline
		}
		if r.RatioTo != "" {
			baseRPS += " (" + r.RatioTo + ")"
			ratio += " of " + r.RatioTo
		}
		rps := fmt.Sprintf("%.0f", r.RPS)
		if r.RPS < 100 {
			rps = fmt.Sprintf("%.1f", r.RPS) // sign-ins per second
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f ms\t%.2f ms\t%s\t%s\t%.0f MB\t%s %s\t%s\n",
			r.Scenario, rps, r.P50Ms, r.P99Ms, baseRPS, ratio, r.PeakRSSMB, verdict, r.Target, r.Status)
		for _, st := range r.Steps {
			fmt.Fprintf(tw, "  step %s\t\t%.2f ms\t%.2f ms\t\t\t\t\t\n", st.Step, st.P50Ms, st.P99Ms)
		}
		if r.SignInsPerSec > 0 {
			fmt.Fprintf(tw, "  alone: p99 %.2f ms; during: %.1f sign-ins/s alongside\t\t\t\t\t\t\t\t\n", r.AloneP99Ms, r.SignInsPerSec)
		}
		if r.Shed > 0 {
			fmt.Fprintf(tw, "  %d storm sign-ins answered 503 (no argon2id slot within 5 s)\t\t\t\t\t\t\t\t\n", r.Shed)
		}
		if r.Throttled > 0 {
			fmt.Fprintf(tw, "  %d sign-ins answered 429\t\t\t\t\t\t\t\t\n", r.Throttled)
		}
		for _, p := range r.PerReplica {
			fmt.Fprintf(tw, "  %s\t%.0f\t%.2f ms\t%.2f ms\t\t\t%.0f MB\t\t\n", p.Scenario, p.RPS, p.P50Ms, p.P99Ms, p.PeakRSSMB)
		}
	}
	tw.Flush()
	if p := rep.Propagation; p != nil {
		fmt.Fprintf(w, "\nrevocation at replica 1 seen at replica 2: median %.1f ms, max %.1f ms (%d revocations)\n", p.MedianMs, p.MaxMs, p.Samples)
	}
	if a := rep.Audit; a != nil {
		if a.Intact {
			chains := "chains"
			if len(a.Chains) == 1 {
				chains = "chain"
			}
			fmt.Fprintf(w, "audit log after the run: %d events in %d %s, intact\n", a.Events, len(a.Chains), chains)
		} else {
			fmt.Fprintf(w, "audit log after the run: BROKEN: %s\n", a.Reason)
		}
	}
}

// auditResult is the part of `signet audit verify --json` the report keeps.
type auditResult struct {
	Events int    `json:"events"`
	Intact bool   `json:"intact"`
	Reason string `json:"reason,omitempty"`
	Chains []struct {
		Chain  string `json:"chain"`
		Events int    `json:"events"`
	} `json:"chains,omitempty"`
}

// median combines rounds of one scenario: each figure is the median of its values (the upper
// one for an even count); the peak RSS is the highest seen; a failed round fails the result.
func median(rounds []result) result {
	out := rounds[0]
	pick := func(get func(result) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out.RPS = pick(func(r result) float64 { return r.RPS })
	out.P50Ms = pick(func(r result) float64 { return r.P50Ms })
	out.P99Ms = pick(func(r result) float64 { return r.P99Ms })
	out.Ratio = pick(func(r result) float64 { return r.Ratio })
	out.BaselineRPS = pick(func(r result) float64 { return r.BaselineRPS })
	// What is not a single figure (a sign-in's steps, the storm's rate, introspection's p99 alone)
	// comes from the round of the median req/s; the 429s and 503s are summed over all rounds.
	for _, r := range rounds {
		if r.RPS == out.RPS {
			out.Steps, out.SignInsPerSec, out.AloneP99Ms = r.Steps, r.SignInsPerSec, r.AloneP99Ms
			break
		}
	}
	out.Throttled, out.Shed = 0, 0
	for _, r := range rounds {
		out.Throttled += r.Throttled
		out.Shed += r.Shed
		out.PeakRSSMB = max(out.PeakRSSMB, r.PeakRSSMB)
		if r.Status != "ok" && out.Status == "ok" {
			out.Status = r.Status
		}
	}
	return out
}
