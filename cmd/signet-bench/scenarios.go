package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
)

// target is what a scenario must reach on the 2-core machine.
type target struct {
	minRatio float64 // of the baseline's req/s
	maxP99Ms float64 // 0: none
	maxRSSMB float64
}

func (t target) String() string {
	s := fmt.Sprintf("≥%.0f%% of baseline", t.minRatio*100)
	if t.maxP99Ms > 0 {
		s += fmt.Sprintf(", p99 ≤ %.0f ms", t.maxP99Ms)
	}
	return s + fmt.Sprintf(", RSS ≤ %.0f MB", t.maxRSSMB)
}

// scenario is one measured workload; prepare runs the unmeasured setup and returns what to send.
type scenario struct {
	name    string
	target  target
	prepare func(ctx context.Context, e *benchEnv) (request, error)
}

// scenarios is the one list of workloads; add new ones here.
var scenarios = []scenario{
	{"introspect-opaque", target{0.60, 10, 150}, func(ctx context.Context, e *benchEnv) (request, error) {
		return e.introspect(ctx, e.opaque, 1)
	}},
	{"introspect-jwt", target{0.60, 10, 150}, func(ctx context.Context, e *benchEnv) (request, error) {
		return e.introspect(ctx, e.jwt, 1)
	}},
	{"introspect-jwt-distinct", target{0.60, 10, 150}, func(ctx context.Context, e *benchEnv) (request, error) {
		return e.introspect(ctx, e.jwt, e.distinct)
	}},
	{"client-credentials-jwt", target{0.30, 0, 150}, func(ctx context.Context, e *benchEnv) (request, error) {
		return e.tokenRequest(e.jwt), nil
	}},
	{"client-credentials-opaque", target{0.0, 0, 150}, func(ctx context.Context, e *benchEnv) (request, error) {
		return e.tokenRequest(e.opaque), nil
	}},
}

func selectScenarios(list string) ([]scenario, error) {
	if list == "" {
		return scenarios, nil
	}
	var out []scenario
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, s := range scenarios {
			if s.name == strings.TrimSpace(name) {
				out, found = append(out, s), true
			}
		}
		if !found {
			var names []string
			for _, s := range scenarios {
				names = append(names, s.name)
			}
			return nil, fmt.Errorf("unknown scenario %q; known: %s", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// client is a client created through the CLI.
type client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// benchEnv holds what setup created.
type benchEnv struct {
	sig         *proc
	bin, data   string
	api         client // the introspecting API; tokens are issued for its audience
	jwt, opaque client // token-issuing applications
	distinct    int
}

// cli runs a signet command against the bench's data directory and decodes its JSON.
func (e *benchEnv) cli(ctx context.Context, v any, args ...string) error {
	args = append(args, "--data-dir", e.data, "--json", "--log-level", "error")
	out, err := exec.CommandContext(ctx, e.bin, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("signet %s: %s", strings.Join(args[:2], " "), ee.Stderr)
		}
		return err
	}
	return json.Unmarshal(out, v)
}

func setup(ctx context.Context, sig *proc, distinct int) (*benchEnv, error) {
	e := &benchEnv{sig: sig, bin: sig.cmd.Path, distinct: distinct}
	for i, a := range sig.cmd.Args {
		if a == "--data-dir" {
			e.data = sig.cmd.Args[i+1]
		}
	}
	if err := e.cli(ctx, &e.api, "client", "create", "--name", "bench-api"); err != nil {
		return nil, err
	}
	if err := e.cli(ctx, &e.jwt, "client", "create", "--name", "bench-app-jwt", "--token-format", "jwt", "--alg", "ES256", "--audience", e.api.ID); err != nil {
		return nil, err
	}
	if err := e.cli(ctx, &e.opaque, "client", "create", "--name", "bench-app-opaque", "--token-format", "opaque", "--audience", e.api.ID); err != nil {
		return nil, err
	}
	return e, nil
}

// tokenRequest is a client_credentials request for the API's audience.
func (e *benchEnv) tokenRequest(c client) request {
	return request{url: e.sig.url + "/oauth/v2/token", auth: basicAuth(c.ID, c.Secret), body: "grant_type=client_credentials&audience=" + url.QueryEscape(e.api.ID)}
}

// fetchTokens gets n tokens for c with a bounded worker pool (setup, not measured).
func (e *benchEnv) fetchTokens(ctx context.Context, c client, n int) ([]string, error) {
	req := e.tokenRequest(c)
	out := make([]string, n)
	jobs := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				tok, err := e.post(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				out[i] = tok["access_token"].(string)
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case jobs <- i:
		case err = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return out, err
}

func (e *benchEnv) post(ctx context.Context, req request) (map[string]any, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, req.url, strings.NewReader(req.body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", req.auth)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &m) != nil {
		return nil, fmt.Errorf("%s answered %d: %s", req.url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return m, nil
}

// introspect prepares introspection by the API of n tokens of c, checking once that one is active.
func (e *benchEnv) introspect(ctx context.Context, c client, n int) (request, error) {
	toks, err := e.fetchTokens(ctx, c, n)
	if err != nil {
		return request{}, err
	}
	req := request{url: e.sig.url + "/oauth/v2/introspect", auth: basicAuth(e.api.ID, e.api.Secret)}
	for _, t := range toks {
		req.bodies = append(req.bodies, "token="+url.QueryEscape(t))
	}
	if n == 1 {
		req.body, req.bodies = req.bodies[0], nil
	}
	check := req
	check.body = "token=" + url.QueryEscape(toks[0])
	resp, err := e.post(ctx, check)
	if err != nil {
		return request{}, err
	}
	if resp["active"] != true {
		return request{}, fmt.Errorf("a fresh token introspects as %v; the scenario would measure refusals", resp)
	}
	return req, nil
}
