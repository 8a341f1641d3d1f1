package exchange_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// TestKillSwitchOffAndOnWithinOneSecond: impersonation turned off and on again within one second.
// A token minted after the switch went off is active at once, even in the same second (iat has
// whole seconds, the cut-off microseconds); one minted before it, or in its very millisecond, is
// inactive and stays so.
func TestKillSwitchOffAndOnWithinOneSecond(t *testing.T) {
	e := newSessions(t)
	ctx := context.Background()
	svc := tokenService(t, e)
	second := e.now // whole
	mint := func(at time.Duration) string {
		t.Helper()
		a := &tokens.Access{ID: tokens.NewID(second.Add(at)), Subject: "u-dana", SubjectKind: store.KindUser, ClientID: "c-spa",
			Audience: []string{"c-api"}, IssuedAt: second, ExpiresAt: second.Add(time.Hour),
			Act:      &tokens.Actor{Subject: "u-sam", ClientID: "c-spa"},
			Exchange: &tokens.Exchange{Kind: exchange.ModeImpersonation, Session: "xs-" + secrets.NewSortableID(second.Add(at))}}
		raw, err := svc.Issue(ctx, a, store.FormatJWT, keys.ES256)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	before, sameMS := mint(50*time.Millisecond), mint(100*time.Millisecond+300*time.Microsecond)
	e.now = second.Add(100 * time.Millisecond)
	if err := e.m.Disable(ctx, "ops", "incident"); err != nil {
		t.Fatal(err)
	}
	e.now = second.Add(200 * time.Millisecond)
	if err := e.m.Enable(ctx, "ops", "resolved"); err != nil {
		t.Fatal(err)
	}
	e.now = second.Add(300 * time.Millisecond)
	after := mint(300 * time.Millisecond)
	wantActive(t, svc, map[string]activeWant{"minted before the switch went off": {before, false}, "minted in its millisecond": {sameMS, false},
		"minted after it went on again": {after, true}})
}

// tokenService gives e's sessions a token service on e's store and clock, with an ES256 key.
func tokenService(t *testing.T, e *sessionsEnv) *tokens.Service {
	t.Helper()
	sk, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	km := keys.NewManager(e.st, sk, time.Hour)
	if _, err := km.Ensure(context.Background(), keys.ES256); err != nil {
		t.Fatal(err)
	}
	svc := tokens.New(tokens.Config{Issuer: "https://signet.test", Store: e.st, Keys: km, Secrets: sk, Now: func() time.Time { return e.now }})
	e.m.Tokens = svc
	return svc
}

// activeWant is a token and whether it must be active.
type activeWant struct {
	raw    string
	active bool
}

// wantActive resolves each token and checks it is active or not, as wanted.
func wantActive(t *testing.T, svc *tokens.Service, cases map[string]activeWant) {
	t.Helper()
	for name, tc := range cases {
		_, inactive, err := svc.Resolve(context.Background(), tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := inactive == nil; got != tc.active {
			t.Errorf("%s: active = %v (%v), want %v", name, got, inactive, tc.active)
		}
	}
}

// TestKillSwitchReachesStaleReplicas: with Propagation set, a token that a replica still deciding on
// a stale cache mints just after the switch went off (here 100 ms after, within 250 ms) is
// inactive; so is one of a locked user minted within the window; one minted after the window, once
// the switch is back on, is active.
func TestKillSwitchReachesStaleReplicas(t *testing.T) {
	e := newSessions(t)
	e.m.Propagation = 250 * time.Millisecond
	ctx := context.Background()
	svc := tokenService(t, e)
	start := e.now
	mint := func(at time.Duration, subject string, impersonation bool) string {
		t.Helper()
		a := &tokens.Access{ID: tokens.NewID(start.Add(at)), Subject: subject, SubjectKind: store.KindUser, ClientID: "c-spa",
			Audience: []string{"c-api"}, IssuedAt: start.Add(at).Truncate(time.Second), ExpiresAt: start.Add(time.Hour)}
		if impersonation {
			a.Act = &tokens.Actor{Subject: "u-sam", ClientID: "c-spa"}
			a.Exchange = &tokens.Exchange{Kind: exchange.ModeImpersonation, Session: "xs-" + secrets.NewSortableID(start.Add(at))}
		}
		raw, err := svc.Issue(ctx, a, store.FormatJWT, keys.ES256)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if err := e.m.Disable(ctx, "ops", "incident"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RetirePrincipal(ctx, store.KindUser, "u-eve", "ops", "locked", time.Hour); err != nil {
		t.Fatal(err)
	}
	stale, staleEve := mint(100*time.Millisecond, "u-dana", true), mint(100*time.Millisecond, "u-eve", false)
	e.now = start.Add(400 * time.Millisecond)
	if err := e.m.Enable(ctx, "ops", "resolved"); err != nil {
		t.Fatal(err)
	}
	after := mint(400*time.Millisecond, "u-dana", true)
	wantActive(t, svc, map[string]activeWant{"impersonation minted by a stale replica": {stale, false},
		"a retired user's token minted by a stale replica": {staleEve, false}, "impersonation minted after the window, switch back on": {after, true}})
}

// TestKillSwitchCutOffIsReadOnceTheSwitchIsOn: an exchange that still found the switch off took its
// issue time before that, so the cut-off (compared to the millisecond) must be read after the
// switch is on, never before it is stored.
func TestKillSwitchCutOffIsReadOnceTheSwitchIsOn(t *testing.T) {
	e := newSessions(t)
	ctx := context.Background()
	var seen []bool
	e.m.Now = func() time.Time {
		v, _ := e.st.GetSetting(ctx, exchange.KillSwitchSetting)
		seen = append(seen, v == "true")
		return e.now
	}
	if err := e.m.Disable(ctx, "ops", "incident"); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 {
		t.Fatal("Disable read no time")
	}
	for i, on := range seen {
		if !on {
			t.Fatalf("Disable read the time (call %d of %d) before the switch was on", i+1, len(seen))
		}
	}
}
