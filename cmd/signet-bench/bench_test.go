package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const wrkSample = `Running 2s test @ http://127.0.0.1:40000/oauth/v2/introspect
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.09us    1.21ms  25.93ms   94.02%
    Req/Sec    29.72k     2.41k   34.57k    70.00%
  Latency Distribution
     50%  593.00us
     75%  790.00us
     90%    1.12ms
     99%    7.67ms
  118356 requests in 2.00s, 55.95MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  59156.30
Transfer/sec:     27.97MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 59156.30 || r.P50Ms != 0.593 || r.P99Ms != 7.67 || r.Requests != 118356 || r.Non2xx != 17 || r.SockErrors != 3 {
		t.Fatalf("parsed %+v", r)
	}
	seconds := strings.Replace(wrkSample, "99%    7.67ms", "99%    1.50s", 1)
	if r, _ := parseWrk(seconds); r.P99Ms != 1500 {
		t.Fatalf("seconds unit: %v", r.P99Ms)
	}
	if _, err := parseWrk("wrk: connection refused"); err == nil {
		t.Fatal("output without Requests/sec must be an error")
	}
	noLatency := strings.Replace(wrkSample, "  Latency Distribution\n     50%  593.00us\n", "", 1)
	if _, err := parseWrk(noLatency); err == nil {
		t.Fatal("a report without the latency distribution must be an error")
	}
}

// TestScriptRotatesBodies: a scenario with many bodies gets a wrk script that reads them, one a
// line, from a file holding exactly those bodies in order; a second scenario's bodies never
// overwrite the first's.
func TestScriptRotatesBodies(t *testing.T) {
	d := &driver{dir: t.TempDir()}
	first := []string{"token=a", "token=b&token_type_hint=access_token", "token=c"}
	path, err := d.script(request{auth: "Basic abc", bodies: first})
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.script(request{bodies: []string{"token=z"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		script string
		bodies []string
	}{{path, first}, {second, []string{"token=z"}}} {
		b, err := os.ReadFile(tc.script)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{`wrk.method = "POST"`, "application/x-www-form-urlencoded", "function request()"} {
			if !strings.Contains(s, want) {
				t.Errorf("script lacks %s:\n%s", want, s)
			}
		}
		m := regexp.MustCompile(`io\.lines\(("[^"]*")\)`).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("script reads no bodies file:\n%s", s)
		}
		bodiesPath, err := strconv.Unquote(m[1])
		if err != nil {
			t.Fatal(err)
		}
		written, err := os.ReadFile(bodiesPath)
		if err != nil {
			t.Fatalf("the bodies file the script reads: %v", err)
		}
		if got := strings.Split(strings.TrimSuffix(string(written), "\n"), "\n"); !slices.Equal(got, tc.bodies) {
			t.Fatalf("the script sends %q, want %q", got, tc.bodies)
		}
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `wrk.headers["Authorization"] = "Basic abc"`) {
		t.Fatalf("the first script does not authenticate:\n%s", b)
	}
	if b, _ := os.ReadFile(second); strings.Contains(string(b), "Authorization") {
		t.Fatalf("a request without credentials must send none:\n%s", b)
	}
}

func TestBaselineBodyIs300Bytes(t *testing.T) {
	if len(baselineBody) != 300 {
		t.Fatalf("baseline body is %d bytes", len(baselineBody))
	}
}

func TestSelectScenarios(t *testing.T) {
	if s, err := selectScenarios("introspect-jwt, client-credentials-jwt"); err != nil || len(s) != 2 {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := selectScenarios("nope"); err == nil || !strings.Contains(err.Error(), "introspect-opaque") {
		t.Fatalf("unknown scenario: %v", err)
	}
}

// TestBaselineUnderWrk runs the baseline process and wrk for one second: the driver works end to
// end on this machine.
func TestBaselineUnderWrk(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("wrk is missing: .ci/run must install it")
		}
		t.Skip("wrk is not installed (apt-get install -y wrk)")
	}
	bin := t.TempDir() + "/signet-bench"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := start(context.Background(), bin, t.TempDir()+"/baseline.log", "baseline-server", "--addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	p.url = "http://" + addr
	if err := waitReady(context.Background(), p, p.url+"/ready"); err != nil {
		t.Fatal(err)
	}
	d := &driver{wrk: wrk, dir: t.TempDir(), connections: 4, threads: 1}
	r, err := d.run(context.Background(), request{url: p.url + "/x", body: "token=abc"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS <= 0 || r.P50Ms <= 0 || r.Requests == 0 || p.peakRSS() <= 0 {
		t.Fatalf("result %+v, rss %v", r, p.peakRSS())
	}
}

// TestMedianOfRounds: each figure is the median across rounds, the RSS the highest, and one failed
// round fails the scenario.
func TestMedianOfRounds(t *testing.T) {
	rounds := []result{
		{Scenario: "s", RPS: 100, P99Ms: 9, Ratio: 0.5, BaselineRPS: 200, PeakRSSMB: 50, Status: "ok"},
		{Scenario: "s", RPS: 300, P99Ms: 12, Ratio: 0.9, BaselineRPS: 333, PeakRSSMB: 70, Status: "ok"},
		{Scenario: "s", RPS: 200, P99Ms: 8, Ratio: 0.7, BaselineRPS: 285, PeakRSSMB: 60, Status: "ok"},
	}
	m := median(rounds)
	if m.RPS != 200 || m.P99Ms != 9 || m.Ratio != 0.7 || m.BaselineRPS != 285 || m.PeakRSSMB != 70 || m.Status != "ok" {
		t.Fatalf("median %+v", m)
	}
	// A sign-in's steps come from the round of the median rate; 503s and 429s add up.
	rounds[0].Shed, rounds[1].Shed, rounds[2].Throttled = 1, 2, 3
	rounds[2].Steps = []stepResult{{Step: "password", P50Ms: 40}}
	rounds[0].Steps = []stepResult{{Step: "password", P50Ms: 900}}
	if m := median(rounds); m.Shed != 3 || m.Throttled != 3 || len(m.Steps) != 1 || m.Steps[0].P50Ms != 40 {
		t.Fatalf("median %+v", m)
	}
	rounds[1].Status = "FAILED: non-2xx"
	if m := median(rounds); m.Status != "FAILED: non-2xx" {
		t.Fatalf("a failed round must fail the scenario: %+v", m)
	}
}

// TestCLIStepsUseTheServersDatabase: the CLI steps that set a run up get the server's --data-dir,
// --db and --master-key, so with --db postgres://… they write where the server reads.
func TestCLIStepsUseTheServersDatabase(t *testing.T) {
	got := storeArgs([]string{"signet", "serve", "--data-dir", "/tmp/d", "--addr", "127.0.0.1:1", "--issuer", "http://x",
		"--db", "postgres://h/db?search_path=s", "--master-key", "a2V5", "--log-level", "warn"})
	want := []string{"--data-dir", "/tmp/d", "--db", "postgres://h/db?search_path=s", "--master-key", "a2V5"}
	if !slices.Equal(got, want) {
		t.Fatalf("store args %v, want %v", got, want)
	}
}
