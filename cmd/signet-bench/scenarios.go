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
	"time"
)

// target is what a scenario must reach on the 2-core machine.
type target struct {
	minRatio float64 // of the baseline's req/s (of what the scenario's RatioTo names, when set)
	maxP99Ms float64 // 0: none
	maxRSSMB float64
	of       string // what minRatio divides by, when not the baseline
}

func (t target) String() string {
	var s []string
	if t.minRatio > 0 {
		of := t.of
		if of == "" {
			of = "baseline"
		}
		s = append(s, fmt.Sprintf("≥%.0f%% of %s", t.minRatio*100, of))
	}
	if t.maxP99Ms > 0 {
		s = append(s, fmt.Sprintf("p99 ≤ %.0f ms", t.maxP99Ms))
	}
	return strings.Join(append(s, fmt.Sprintf("RSS ≤ %.0f MB", t.maxRSSMB)), ", ")
}

// scenario is one measured workload; prepare runs the unmeasured setup and returns what wrk
// sends. A scenario that is a conversation (sign-in, refresh chains) has drive instead: it runs
// one round itself, from Go, and is not divided by the baseline.
type scenario struct {
	name    string
	target  target
	prepare func(ctx context.Context, e *benchEnv) (request, error)
	drive   func(e *benchEnv, ctx context.Context, s signinRun) (result, error)
}

// scenarios is the one list of workloads; add new ones here.
var scenarios = []scenario{
	{name: "introspect-opaque", target: target{minRatio: 0.60, maxP99Ms: 10, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.introspect(ctx, e.opaque, 1)
	}},
	{name: "introspect-jwt", target: target{minRatio: 0.60, maxP99Ms: 10, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.introspect(ctx, e.jwt, 1)
	}},
	{name: "introspect-jwt-distinct", target: target{minRatio: 0.60, maxP99Ms: 10, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.introspect(ctx, e.jwt, e.distinct)
	}},
	{name: "client-credentials-jwt", target: target{minRatio: 0.30, maxP99Ms: 0, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.tokenRequest(e.jwt), nil
	}},
	{name: "client-credentials-opaque", target: target{minRatio: 0.0, maxP99Ms: 0, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.tokenRequest(e.opaque), nil
	}},
	{name: "exchange-delegation", target: target{minRatio: 0.15, maxP99Ms: 25, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.exchangeRequest(ctx, e.agentApp, e.customerToken, typeAccessToken, e.agentToken)
	}},
	{name: "exchange-impersonation", target: target{minRatio: 0.15, maxP99Ms: 25, maxRSSMB: 150}, prepare: func(ctx context.Context, e *benchEnv) (request, error) {
		return e.exchangeRequest(ctx, e.backend, e.customerID, typeUserID, e.staffToken)
	}},
	{name: "authorization-code", target: target{maxRSSMB: 150}, drive: (*benchEnv).authorizationCode},
	{name: "refresh-token", target: target{maxRSSMB: 150}, drive: (*benchEnv).refreshToken},
	{name: "introspect-during-signin", target: target{minRatio: 0.5, maxRSSMB: 150, of: "introspection alone"}, drive: (*benchEnv).introspectDuringSignin},
}

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAccessToken    = "urn:ietf:params:oauth:token-type:access_token"
	typeUserID         = "urn:zitadel:params:oauth:token-type:user_id"
)

// exchangeRequest is a token-exchange request by client c, checked once to succeed.
func (e *benchEnv) exchangeRequest(ctx context.Context, c client, subject, subjectType, actor string) (request, error) {
	form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {subjectType},
		"actor_token": {actor}, "actor_token_type": {typeAccessToken}, "audience": {e.api.ID}, "reason": {"load test"}}
	req := request{url: e.sig.url + "/oauth/v2/token", auth: basicAuth(c.ID, c.Secret), body: form.Encode()}
	// Rules added through the CLI reach the server with its next change-feed poll.
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := e.post(ctx, req)
		if err == nil {
			return req, nil
		}
		if time.Now().After(deadline) {
			return request{}, fmt.Errorf("a single exchange fails, so the scenario would measure refusals: %w", err)
		}
		select {
		case <-ctx.Done():
			return request{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
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
	bin         string
	store       []string // the server's --data-dir, --db and --master-key: the CLI uses the same database
	api         client   // the introspecting API; tokens are issued for its audience
	jwt, opaque client   // token-issuing applications
	distinct    int

	// Sign-in: a web client, users with signinPassword (signinUsers of them, created on first use).
	web         client
	users       []string
	signinUsers int
	signinOnce  sync.Once
	signinErr   error

	// Token exchange: a backend that impersonates, an agent app that delegates, and their tokens.
	backend, agentApp                     client
	customerID                            string
	customerToken, staffToken, agentToken string
}

// cli runs a signet command against the bench's data directory and decodes its JSON.
func (e *benchEnv) cli(ctx context.Context, v any, args ...string) error {
	args = append(args, "--json", "--log-level", "error")
	args = append(args, e.store...)
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

func setup(ctx context.Context, sig *proc, distinct, signinUsers int) (*benchEnv, error) {
	e := &benchEnv{sig: sig, bin: sig.cmd.Path, distinct: distinct, signinUsers: max(signinUsers, 1), store: storeArgs(sig.cmd.Args)}
	if err := e.cli(ctx, &e.api, "client", "create", "--name", "bench-api"); err != nil {
		return nil, err
	}
	if err := e.cli(ctx, &e.jwt, "client", "create", "--name", "bench-app-jwt", "--token-format", "jwt", "--alg", "ES256", "--audience", e.api.ID); err != nil {
		return nil, err
	}
	if err := e.cli(ctx, &e.opaque, "client", "create", "--name", "bench-app-opaque", "--token-format", "opaque", "--audience", e.api.ID); err != nil {
		return nil, err
	}
	return e, e.setupExchange(ctx)
}

// setupExchange creates the people, clients, rules and tokens of the exchange scenarios.
func (e *benchEnv) setupExchange(ctx context.Context) error {
	var staff, customer, agent struct {
		ID string `json:"id"`
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	steps := []struct {
		v    any
		args []string
	}{
		{&e.backend, []string{"client", "create", "--name", "bench-admin-backend", "--grant", grantTokenExchange}},
		{&e.agentApp, []string{"client", "create", "--name", "bench-agent-app", "--grant", grantTokenExchange}},
		{&staff, []string{"user", "create", "--username", "bench-staff", "--role", "support"}},
		{&customer, []string{"user", "create", "--username", "bench-customer"}},
		{&agent, []string{"serviceaccount", "create", "--name", "bench-agent"}},
	}
	for _, s := range steps {
		if err := e.cli(ctx, s.v, s.args...); err != nil {
			return err
		}
	}
	e.customerID = customer.ID
	var rule map[string]any
	for _, args := range [][]string{
		{"policy", "add", "--name", "bench-impersonation", "--mode", "impersonation", "--actor-role", "support", "--subject-user", "*", "--client", e.backend.ID, "--audience", e.api.ID, "--scope", "read"},
		{"policy", "add", "--name", "bench-delegation", "--mode", "delegation", "--actor-serviceaccount", "bench-agent", "--subject-user", "*", "--client", e.agentApp.ID, "--audience", e.api.ID, "--scope", "read"},
	} {
		if err := e.cli(ctx, &rule, args...); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		dst  *string
		args []string
	}{
		{&e.staffToken, []string{"token", "issue", "--client", e.backend.ID, "--user", "bench-staff", "--scope", "read"}},
		{&e.customerToken, []string{"token", "issue", "--client", e.backend.ID, "--user", "bench-customer", "--scope", "read"}},
		{&e.agentToken, []string{"token", "issue", "--client", e.agentApp.ID, "--serviceaccount", "bench-agent", "--scope", "read"}},
	} {
		if err := e.cli(ctx, &tok, t.args...); err != nil {
			return err
		}
		*t.dst = tok.AccessToken
	}
	return nil
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

// storeArgs picks from a `signet serve` command line the flags that name its data: the CLI steps
// must reach the same database with the same master key (a CLI without --db would quietly create a
// second SQLite database in its data directory).
func storeArgs(serve []string) []string {
	var out []string
	for i, a := range serve {
		if (a == "--data-dir" || a == "--db" || a == "--master-key") && i+1 < len(serve) {
			out = append(out, a, serve[i+1])
		}
	}
	return out
}
