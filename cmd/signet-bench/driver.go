package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// request is what a scenario sends: one form POST, or a rotation through many bodies.
type request struct {
	url    string
	auth   string   // Authorization header value, if any
	body   string   // the form body
	bodies []string // when set, each request takes the next body
}

// driver runs wrk.
type driver struct {
	wrk         string
	dir         string
	connections int
	threads     int
	seq         int
}

// script writes the Lua script that builds the form POST.
func (d *driver) script(req request) (string, error) {
	d.seq++
	var b strings.Builder
	b.WriteString("wrk.method = \"POST\"\n")
	b.WriteString("wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n")
	if req.auth != "" {
		fmt.Fprintf(&b, "wrk.headers[\"Authorization\"] = %q\n", req.auth)
	}
	if len(req.bodies) == 0 {
		fmt.Fprintf(&b, "wrk.body = %q\n", req.body)
	} else {
		path := filepath.Join(d.dir, fmt.Sprintf("bodies-%d.txt", d.seq))
		if err := os.WriteFile(path, []byte(strings.Join(req.bodies, "\n")+"\n"), 0o600); err != nil {
			return "", err
		}
		// Each thread formats every request once in init, so the per-request cost in wrk is a table
		// lookup: the driver shares the cores with the server and must stay light.
		fmt.Fprintf(&b, `bodies = {}
for line in io.lines(%q) do bodies[#bodies + 1] = line end
requests = {}
counter = 0
function init(args)
  for i, body in ipairs(bodies) do requests[i] = wrk.format(nil, nil, nil, body) end
  counter = math.random(#requests)
end
function request()
  counter = counter %% #requests + 1
  return requests[counter]
end
`, path)
	}
	path := filepath.Join(d.dir, fmt.Sprintf("script-%d.lua", d.seq))
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// result is one measured run.
type result struct {
	Scenario string  `json:"scenario"`
	RPS      float64 `json:"req_per_sec"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	Ratio    float64 `json:"ratio_to_baseline,omitempty"`
	// BaselineRPS is the baseline measured right before this scenario, which Ratio divides by.
	BaselineRPS float64 `json:"baseline_req_per_sec,omitempty"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	RSSMB       float64 `json:"rss_mb"`
	Requests    int64   `json:"requests"`
	Non2xx      int64   `json:"non_2xx"`
	SockErrors  int64   `json:"socket_errors"`
	Target      string  `json:"target,omitempty"`
	TargetMet   bool    `json:"target_met"`
	Status      string  `json:"status"`
	// PerReplica holds each replica's own figures when the load was spread over several.
	PerReplica []result `json:"per_replica,omitempty"`

	// The Go-driven sign-in scenarios: RatioTo names what Ratio divides by when it is not the
	// baseline ("alone": introspection without the sign-in storm, in BaselineRPS, its p99 in
	// AloneP99Ms); SignInsPerSec is the storm's rate; Throttled counts 429s at the login form
	// (must be 0); Shed counts the storm's 503s; Steps are a sign-in's steps.
	RatioTo       string       `json:"ratio_to,omitempty"`
	AloneP99Ms    float64      `json:"alone_p99_ms,omitempty"`
	SignInsPerSec float64      `json:"concurrent_sign_ins_per_sec,omitempty"`
	Throttled     int64        `json:"throttled,omitempty"`
	Shed          int64        `json:"shed_503,omitempty"` // sign-ins refused for want of an argon2id slot (storm only)
	Steps         []stepResult `json:"steps,omitempty"`
}

// run drives req for dur and parses wrk's report. Non-2xx answers or socket errors fail the run.
func (d *driver) run(ctx context.Context, req request, dur time.Duration) (result, error) {
	script, err := d.script(req)
	if err != nil {
		return result{}, err
	}
	secs := max(int(dur.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, d.wrk, "-t"+strconv.Itoa(d.threads), "-c"+strconv.Itoa(d.connections),
		"-d"+strconv.Itoa(secs)+"s", "--timeout", "5s", "--latency", "-s", script, req.url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, err
	}
	r.Status = "ok"
	if r.Non2xx > 0 || r.SockErrors > 0 {
		return r, fmt.Errorf("%d non-2xx responses, %d socket errors", r.Non2xx, r.SockErrors)
	}
	return r, nil
}

var (
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reTotal    = regexp.MustCompile(`(?m)^\s*([0-9]+) requests in`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	reNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+([0-9]+)`)
	reSockErrs = regexp.MustCompile(`(?m)^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
)

// parseWrk reads wrk's text report (with --latency).
func parseWrk(out string) (result, error) {
	var r result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", firstLines(out, 20))
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range rePct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.P50Ms = v
		} else {
			r.P99Ms = v
		}
	}
	if r.P50Ms == 0 || r.P99Ms == 0 {
		return r, fmt.Errorf("no latency distribution in wrk output (was --latency passed?)")
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSockErrs.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.SockErrors += n
		}
	}
	return r, nil
}

func firstLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var lines []string
	for sc.Scan() && len(lines) < n {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines, "\n")
}
