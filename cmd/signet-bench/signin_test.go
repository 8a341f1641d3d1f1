package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// signinBench is a running provider with a web client and one user, as the sign-in scenarios set
// them up through the CLI.
func signinBench(t *testing.T) (*benchEnv, *testenv.Env) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	c := env.CreateClient(store.Client{Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic, RedirectURIs: []string{callbackURI},
		GrantTypes: []string{"authorization_code", "refresh_token"}})
	env.CreateUserWithPassword("bench-signin-000", signinPassword)
	return &benchEnv{web: client{ID: c.ID, Secret: c.Secret}, users: []string{"bench-signin-000"}}, env
}

// TestSignInIteration: one iteration of authorization-code signs in without a browser and ends
// with a refresh token; refresh-token's iteration rotates it, and the old one is then refused
// (rotation is real, so a chain must carry the new token).
func TestSignInIteration(t *testing.T) {
	e, env := signinBench(t)
	ctx := context.Background()
	tr := newTransport()
	defer tr.CloseIdleConnections()
	si, err := e.signInOnce(ctx, tr, env.URL, "bench-signin-000", signinPassword)
	if err != nil {
		t.Fatal(err)
	}
	if si.refreshToken == "" || si.steps[0] <= 0 || si.steps[1] <= 0 || si.steps[2] <= 0 {
		t.Fatalf("sign-in %+v: want a refresh token and three timed steps", si)
	}
	next, err := e.refreshOnce(ctx, tr, env.URL, si.refreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next == si.refreshToken {
		t.Fatal("refresh did not rotate")
	}
	if _, err := e.refreshOnce(ctx, tr, env.URL, si.refreshToken); err == nil {
		t.Fatal("the rotated-out refresh token was accepted again")
	}
}

// TestSignInIterationFailsLoudly: a wrong password is a failed iteration, not a measured one, and a
// 429 from the failed sign-in throttle is recognised as such (the scenario reports it).
func TestSignInIterationFailsLoudly(t *testing.T) {
	e, env := signinBench(t)
	ctx := context.Background()
	tr := newTransport()
	defer tr.CloseIdleConnections()
	var throttled error
	for i := range 10 { // the account's limit is 5 failures per window
		_, err := e.signInOnce(ctx, tr, env.URL, "bench-signin-000", "not the password at all")
		if err == nil {
			t.Fatalf("attempt %d with a wrong password counted as a sign-in", i)
		}
		if errors.Is(err, errThrottled) {
			throttled = err
			break
		}
	}
	if throttled == nil {
		t.Fatal("ten wrong passwords never met a 429 the scenario recognises")
	}
	if _, err := e.signInOnce(ctx, tr, env.URL, "bench-signin-000", signinPassword); !errors.Is(err, errThrottled) {
		t.Fatalf("a throttled account's correct password: %v, want the 429 reported", err)
	}
}

// TestLoopStopsAtTheFirstFailure: a load loop ends at its first failure with that error in the
// result's status, and without one counts only the iterations of the measured window.
func TestLoopStopsAtTheFirstFailure(t *testing.T) {
	calls := 0
	l := loop(context.Background(), 1, 0, time.Second, false, func(ctx context.Context, w int) ([3]time.Duration, error) {
		calls++
		if calls == 3 {
			return [3]time.Duration{}, errors.New("boom")
		}
		return [3]time.Duration{}, nil
	})
	if calls != 3 || l.done != 2 || !strings.Contains(l.asResult().Status, "FAILED") || !strings.Contains(l.asResult().Status, "boom") {
		t.Fatalf("calls %d, result %+v", calls, l.asResult())
	}
	// Half the time is warm-up: about half the iterations are measured, at a rate over the measured
	// half only.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var all atomic.Int64
	l = loop(context.Background(), 2, 300*time.Millisecond, 300*time.Millisecond, false, func(ctx context.Context, w int) ([3]time.Duration, error) {
		all.Add(1)
		<-tick.C
		return [3]time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, nil
	})
	r := l.asResult()
	if r.Status != "ok" || len(r.Steps) != 3 || r.Steps[2].Step != "token" || r.Steps[2].P99Ms != 3 || r.P50Ms <= 0 {
		t.Fatalf("result %+v", r)
	}
	if n := float64(all.Load()); float64(l.done) < 0.3*n || float64(l.done) > 0.7*n {
		t.Fatalf("%d of %d iterations measured with half the time warm-up", l.done, all.Load())
	}
}

// TestLoopMeasuresIterationsLongerThanItsTime: on a machine where one sign-in takes longer than
// the measured time (CI's one second under load), the iterations started in time are still
// measured, at their real rate, instead of the scenario reporting nothing.
func TestLoopMeasuresIterationsLongerThanItsTime(t *testing.T) {
	l := loop(context.Background(), 2, 0, 100*time.Millisecond, false, func(ctx context.Context, w int) ([3]time.Duration, error) {
		<-time.After(400 * time.Millisecond) // the work of one slow iteration
		return [3]time.Duration{}, nil
	})
	r := l.asResult()
	if l.done != 2 || r.Status != "ok" || r.P50Ms < 400 || r.RPS < 2 || r.RPS > 5.1 {
		t.Fatalf("%d measured, result %+v: want 2 iterations of 400 ms at about 5/s (at least 2/s on a loaded machine)", l.done, r)
	}
}

// TestFindFormReadsHiddenFields: the login form's hidden id and CSRF token are sent back, at the
// form's action resolved against the page.
func TestFindFormReadsHiddenFields(t *testing.T) {
	page := `<html><body><form method="post" action="/ui/account/x"><input name="other" value="1"></form>
<form method="post" action="/ui/login/password"><input type="hidden" name="csrf" value="c&amp;1">
<input type="hidden" name="id" value="lr-1"><input name="username" value=""></form></body></html>`
	base, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5/ui/login/step?id=lr-1", nil)
	f, ok := findForm(page, base.URL, "/ui/login/password")
	if !ok || f.action != "http://127.0.0.1:5/ui/login/password" || f.values.Get("csrf") != "c&1" || f.values.Get("id") != "lr-1" || f.values.Has("other") {
		t.Fatalf("form %+v %v", f, ok)
	}
	if _, ok := findForm(page, base.URL, "/ui/login/factor"); ok {
		t.Fatal("found a form that is not on the page")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentileMs(d, 50), percentileMs(d, 99); p50 != 50 || p99 != 99 {
		t.Fatalf("p50 %v p99 %v", p50, p99)
	}
	if p := percentileMs([]time.Duration{7 * time.Millisecond}, 99); p != 7 {
		t.Fatalf("one sample: %v", p)
	}
}

// TestStormToleratesOnlyShedding: the storm counts 503s from the capped password check and goes
// on; any other failure still stops it; authorization-code (no tolerance) fails on a 503.
func TestStormToleratesOnlyShedding(t *testing.T) {
	var calls atomic.Int64
	iter := func(ctx context.Context, w int) ([3]time.Duration, error) {
		switch calls.Add(1) {
		case 2, 4:
			return [3]time.Duration{}, errShed
		case 50:
			return [3]time.Duration{}, errors.New("boom")
		}
		return [3]time.Duration{}, nil
	}
	l := loop(context.Background(), 1, 0, 5*time.Second, true, iter)
	if l.shed != 2 || calls.Load() != 50 || l.err == nil || !strings.Contains(l.err.Error(), "boom") {
		t.Fatalf("shed %d after %d calls, err %v", l.shed, calls.Load(), l.err)
	}
	calls.Store(0)
	l = loop(context.Background(), 1, 0, 5*time.Second, false, iter)
	if !errors.Is(l.err, errShed) || calls.Load() != 2 || !strings.HasPrefix(l.asResult().Status, "FAILED") {
		t.Fatalf("without tolerance: err %v after %d calls", l.err, calls.Load())
	}
}
