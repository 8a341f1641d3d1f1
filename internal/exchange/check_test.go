package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// TestCheckBuildsTheEndpointsRequest: the dry run (`signet policy check`, the admin API) asks about
// the request the token endpoint would build: the actor's and subject's token scopes default to the
// requested scope, tokens are issued to the requesting client, and a subject named by user ID has no
// token and makes the exchange an impersonation.
func TestCheckBuildsTheEndpointsRequest(t *testing.T) {
	now := t0.Add(500 * time.Millisecond)
	agent := Party{Kind: "serviceaccount", ID: "sa-1", Name: "agent"}
	c := Check{Actor: agent, Subject: customer(), Client: "agent-app", Scope: []string{"read"}, Audiences: []string{"orders-api"}, Reason: "r", TTL: time.Minute}
	req := c.Request(now)
	if req.Mode != ModeDelegation || req.Client != "agent-app" || !req.Now.Equal(t0) || req.Reason != "r" || req.TTL != time.Minute || !slices.Equal(req.Audiences, c.Audiences) {
		t.Fatalf("request %+v", req)
	}
	for name, p := range map[string]Party{"actor": req.Actor, "subject": req.Subject} {
		if !p.HasToken || p.TokenClient != "agent-app" || !p.ExpiresAt.Equal(t0.Add(time.Hour)) || !slices.Equal(p.Scope, []string{"read"}) {
			t.Fatalf("%s %+v: a token of the requested scope, issued to the client, valid an hour", name, p)
		}
	}
	c.ActorScope, c.SubjectScope = []string{"read", "write"}, []string{"write"}
	req = c.Request(now)
	if !slices.Equal(req.Actor.Scope, []string{"read", "write"}) || !slices.Equal(req.Subject.Scope, []string{"write"}) {
		t.Fatalf("scopes given must be kept: %+v %+v", req.Actor.Scope, req.Subject.Scope)
	}
	c.SubjectByUserID = true
	req = c.Request(now)
	if req.Mode != ModeImpersonation || req.Subject.HasToken || req.Subject.Scope != nil {
		t.Fatalf("a subject named by user ID: %+v", req)
	}
}

// TestDurationJSON: rule durations are strings such as "15m" in JSON; anything else is refused with
// how to write one.
func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"15m"`), &d); err != nil || time.Duration(d) != 15*time.Minute {
		t.Fatalf("15m: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`900`), &d); err == nil || !strings.Contains(err.Error(), `a duration must be a string such as "15m"`) {
		t.Fatalf("a number: %v", err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil || !strings.Contains(err.Error(), `duration "soon"`) {
		t.Fatalf("not a duration: %v", err)
	}
	if b, err := json.Marshal(Duration(90 * time.Second)); err != nil || string(b) != `"1m30s"` {
		t.Fatalf("marshal: %s %v", b, err)
	}
}

// failingRules is a rule store that fails after the first read (a lost connection).
type failingRules struct {
	memRules
	reads int
}

func (f *failingRules) ListExchangeRules(ctx context.Context) ([]store.ExchangeRule, error) {
	f.reads++
	if f.reads > 1 {
		return nil, errors.New("connection lost")
	}
	return f.memRules.ListExchangeRules(ctx)
}

// TestUnknownRuleLookupFailsLoudly: a rule this process does not know is looked up in the store once
// more; when that read fails, the failure is returned, never "no such rule".
func TestUnknownRuleLookupFailsLoudly(t *testing.T) {
	st := &failingRules{memRules: memRules{rules: map[string]store.ExchangeRule{}}}
	p := NewPolicy(st, "")
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Rule(context.Background(), "added-elsewhere"); err == nil || r != nil {
		t.Fatalf("a failed re-read must be an error: %v %v", r, err)
	}
}
