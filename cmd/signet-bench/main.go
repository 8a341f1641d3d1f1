// Command signet-bench measures Signet against a bare net/http baseline in the same run: it starts
// both as separate processes on loopback, drives each scenario with wrk for a bounded time, and
// prints req/s, p50, p99, the ratio to the baseline and the server's peak RSS.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	signetBin   string
	connections int
	threads     int
	duration    time.Duration
	warmup      time.Duration
	scenarios   string
	db          string
	json        bool
	quick       bool
	strict      bool
	distinct    int
	rounds      int
	replicas    int
	// The Go-driven sign-in scenarios: concurrent sign-ins, users, and their own (shorter, in
	// --quick) time per round.
	signinWorkers  int
	signinUsers    int
	signinDuration time.Duration
	signinWarmup   time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline-server" {
		if err := runBaseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.signetBin, "signet-bin", "", "signet binary (default: go build ./cmd/signet into a temp dir)")
	flag.IntVar(&o.connections, "connections", 50, "concurrent connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per scenario")
	flag.StringVar(&o.scenarios, "scenarios", "", "comma-separated scenarios (default: all)")
	flag.StringVar(&o.db, "db", "", "database for signet serve (default: SQLite in the temp data dir)")
	flag.BoolVar(&o.json, "json", false, "print results as JSON")
	flag.BoolVar(&o.quick, "quick", false, "smoke run: 2s per scenario, 0.5s warm-up, 1,000 distinct tokens")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed")
	flag.IntVar(&o.distinct, "distinct-tokens", 10_000, "tokens cycled by the distinct-token scenario")
	flag.IntVar(&o.rounds, "rounds", 1, "measure each scenario (and its adjacent baseline) this many times and report the medians")
	flag.IntVar(&o.replicas, "replicas", 1, "signet serve processes sharing the --db (PostgreSQL); the load is spread over them")
	flag.IntVar(&o.signinWorkers, "signin-workers", 16, "concurrent sign-ins in authorization-code and the storm of introspect-during-signin")
	flag.IntVar(&o.signinUsers, "signin-users", 32, "users the sign-in scenarios create and sign in, in turn")
	flag.Parse()
	o.signinDuration, o.signinWarmup = o.duration, o.warmup
	if o.quick {
		o.duration, o.warmup, o.distinct = 2*time.Second, 500*time.Millisecond, 1_000
		// The sign-in scenarios check their flow (an ID token, a rotated refresh token, no 429)
		// more than they measure it: one second each, a few users.
		o.signinDuration, o.signinWarmup, o.signinUsers, o.signinWorkers = time.Second, 200*time.Millisecond, 4, 4
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "signet-bench:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run sets up both servers, measures every scenario and reports. It returns the exit code.
func run(ctx context.Context, o options, out io.Writer) (int, error) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return 0, errors.New("wrk is not installed: install it with `apt-get install -y wrk`")
	}
	tmp, err := os.MkdirTemp("", "signet-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	if o.signetBin == "" {
		o.signetBin = filepath.Join(tmp, "signet")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.signetBin, "./cmd/signet")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return 0, fmt.Errorf("building signet (run from the repository root or pass --signet-bin): %w", err)
		}
	}
	selected, err := selectScenarios(o.scenarios)
	if err != nil {
		return 0, err
	}
	o.replicas = max(o.replicas, 1)
	if o.replicas > 1 && !strings.HasPrefix(o.db, "postgres") {
		return 0, errors.New("--replicas needs a shared database: pass --db postgres://…")
	}
	d := &driver{wrk: wrk, dir: tmp, connections: o.connections, threads: o.threads}

	base, err := startBaseline(ctx, tmp)
	if err != nil {
		return 0, err
	}
	defer base.stop()
	if strings.HasPrefix(o.db, "postgres") {
		dsn, drop, err := freshSchema(ctx, o.db)
		if err != nil {
			return 0, err
		}
		defer drop()
		o.db = dsn
	}
	masterKey := ""
	if o.replicas > 1 {
		masterKey = newMasterKey() // every replica must open the same data
	}
	var sigs []*proc
	for i := range o.replicas {
		issuer := ""
		if i > 0 {
			issuer = sigs[0].url
		}
		p, err := startSignet(ctx, o.signetBin, filepath.Join(tmp, fmt.Sprint("data-", i)), o.db, issuer, masterKey)
		if err != nil {
			return 0, err
		}
		defer p.stop()
		sigs = append(sigs, p)
	}
	sig := sigs[0]
	// One driver per replica, the connections split between them.
	drivers := []*driver{d}
	if o.replicas > 1 {
		drivers = nil
		for i := range o.replicas {
			// Each driver writes its scripts in a directory of its own: they run at the same time.
			dir := filepath.Join(tmp, fmt.Sprint("driver-", i))
			if err := os.Mkdir(dir, 0o700); err != nil {
				return 0, err
			}
			drivers = append(drivers, &driver{wrk: wrk, dir: dir, connections: max(o.connections/o.replicas, 1), threads: max(o.threads/o.replicas, 1)})
		}
	}

	rep := &report{Connections: o.connections, Duration: o.duration.String(), Threads: o.threads, Rounds: max(o.rounds, 1), Replicas: o.replicas}
	baseReq := request{url: base.url + "/oauth/v2/introspect", body: "token=" + strings.Repeat("x", 43), auth: basicAuth("client", "secret")}
	measureFor := func(req request, warmup, dur time.Duration) (result, error) {
		if len(sigs) > 1 {
			// Every replica at once, each with its share of the connections.
			return spread(ctx, drivers, sigs, req, warmup, dur)
		}
		if warmup > 0 {
			d.run(ctx, req, warmup)
		}
		return d.run(ctx, req, dur)
	}
	measure := func(req request) (result, error) {
		if o.warmup > 0 {
			d.run(ctx, req, o.warmup)
		}
		return d.run(ctx, req, o.duration)
	}
	measureAll := func(req request) (result, error) { return measureFor(req, o.warmup, o.duration) }
	sr := signinRun{workers: max(o.signinWorkers, 1), refreshWorkers: max(o.connections, 1), warmup: o.signinWarmup, dur: o.signinDuration,
		measureWrk: func(req request) (result, error) { return measureFor(req, o.signinWarmup, o.signinDuration) }}
	if o.quick {
		sr.refreshWorkers = min(sr.refreshWorkers, 8)
	}
	for _, p := range sigs {
		sr.bases = append(sr.bases, p.url)
	}
	baseline := func() (result, error) {
		res, err := measure(baseReq)
		if err != nil {
			return res, fmt.Errorf("baseline: %w", err)
		}
		res.Scenario, res.PeakRSSMB, res.RSSMB = "baseline", base.peakRSS(), base.rss()
		return res, nil
	}
	if rep.Baseline, err = baseline(); err != nil {
		return 0, err
	}

	env, err := setup(ctx, sig, o.distinct, o.signinUsers)
	if err != nil {
		return 0, fmt.Errorf("setup (server log: %s): %w", sig.logPath, err)
	}
	for _, sc := range selected {
		if sc.drive != nil {
			// A conversation driven from Go: no wrk baseline to divide by (another driver).
			var rounds []result
			for range rep.Rounds {
				r, err := sc.drive(env, ctx, sr)
				if err != nil {
					r = result{Status: "FAILED: " + err.Error()}
				}
				r.Scenario, r.PeakRSSMB, r.RSSMB = sc.name, sig.peakRSS(), sig.rss()
				rounds = append(rounds, r)
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
			}
			r := median(rounds)
			r.judge(sc.target)
			rep.Results = append(rep.Results, r)
			continue
		}
		req, err := sc.prepare(ctx, env)
		if err != nil {
			rep.Results = append(rep.Results, result{Scenario: sc.name, Status: "FAILED: " + err.Error()})
			continue
		}
		// Each round measures the baseline right before the scenario, so a ratio compares two
		// measurements taken seconds apart: this machine's speed drifts over minutes.
		var rounds []result
		for range rep.Rounds {
			b, err := baseline()
			if err != nil {
				return 0, err
			}
			r, err := measureAll(req)
			if err != nil {
				r.Status = "FAILED: " + err.Error()
			}
			r.Scenario, r.PeakRSSMB, r.RSSMB, r.BaselineRPS = sc.name, sig.peakRSS(), sig.rss(), b.RPS
			if b.RPS > 0 {
				r.Ratio = r.RPS / b.RPS
			}
			rounds = append(rounds, r)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
		r := median(rounds)
		r.judge(sc.target)
		rep.Results = append(rep.Results, r)
	}
	if len(sigs) > 1 {
		if rep.Propagation, err = propagation(ctx, env, sigs, 21); err != nil {
			return 0, fmt.Errorf("revocation propagation: %w", err)
		}
	}
	// Every audited request of the run, from every replica, must have left an intact chain.
	rep.Audit = &auditResult{}
	if err := env.cli(ctx, rep.Audit, "audit", "verify"); err != nil {
		rep.Audit.Reason = err.Error()
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 0, err
		}
	} else {
		rep.print(out)
	}
	code := 0
	if !rep.Audit.Intact {
		code = 1
	}
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Status, "FAILED") || (o.strict && r.Target != "" && !r.TargetMet) {
			code = 1
		}
	}
	return code, nil
}

// newMasterKey is a random master key shared by the replicas of one run.
func newMasterKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
