package oauth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
	"github.com/signet-id/signet/internal/tokens"
)

const typeRT = "urn:ietf:params:oauth:token-type:refresh_token"

// renv adds to xenv a client allowed to refresh, and rules that allow refresh tokens.
type renv struct {
	*xenv
	offline, helpdesk testenv.Client
	offlineAgentToken string
}

func newREnv(t *testing.T) *renv { return newREnvOn(t, "") }

// newREnvOn is newREnv on backend ("sqlite" or "postgres").
func newREnvOn(t *testing.T, backend string) *renv {
	x := &renv{xenv: newXEnvOn(t, backend)}
	ctx := context.Background()
	x.offline = x.CreateClient(store.Client{Name: "offline-agent", GrantTypes: []string{grantTE, "refresh_token"}})
	x.helpdesk = x.CreateClient(store.Client{Name: "helpdesk", GrantTypes: []string{grantTE, "refresh_token"}, AccessTokenFormat: store.FormatOpaque})
	for _, r := range []exchange.Rule{
		{Name: "agents-act-offline", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
			Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{x.offline.ID}, Audiences: []string{x.api.ID},
			Scopes: []string{"read", "write"}, AllowRefresh: true, RefreshTTL: exchange.Duration(2 * time.Hour)},
		{Name: "helpdesk-sessions", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
			Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{x.helpdesk.ID}, Audiences: []string{x.api.ID},
			Scopes: []string{"read"}, AllowRefresh: true},
	} {
		if err := x.Server.Policy.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	x.offlineAgentToken = x.Token(store.KindServiceAccount, x.agent.ID, x.offline.Client, "read")
	return x
}

// delegateOffline asks for a delegated token with a refresh token.
func (x *renv) delegateOffline(t *testing.T) map[string]any {
	t.Helper()
	code, body := x.exchangeAs(x.offline, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.offlineAgentToken, "actor_token_type": typeAT, "audience": x.api.ID, "requested_token_type": typeRT})
	if code != 200 {
		t.Fatalf("delegation with refresh refused: %v", body)
	}
	return body
}

// refresher is golang.org/x/oauth2 refreshing as client c, the way a Go backend keeps a session.
func (x *renv) refresher(c testenv.Client) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret,
		Endpoint: oauth2.Endpoint{TokenURL: x.URL + "/oauth/v2/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

func (x *renv) refresh(t *testing.T, c testenv.Client, rt string) (*oauth2.Token, *oauth2.RetrieveError) {
	t.Helper()
	tok, err := x.refresher(c).TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("refresh: %v", err)
		}
		return nil, re
	}
	return tok, nil
}

func wantRefused(t *testing.T, re *oauth2.RetrieveError, code, contains string) {
	t.Helper()
	if re == nil {
		t.Fatalf("refresh succeeded; want %s (%s)", code, contains)
	}
	if re.ErrorCode != code || !strings.Contains(re.ErrorDescription, contains) {
		t.Fatalf("refusal %s %q; want %s containing %q", re.ErrorCode, re.ErrorDescription, code, contains)
	}
}

// TestDelegationRefreshRotates: a rule with allow_refresh yields a refresh token that
// golang.org/x/oauth2 uses; each use rotates it, the new access token keeps the act chain and the
// session, and the rotation is audited.
func TestDelegationRefreshRotates(t *testing.T) { onBackends(t, testDelegationRefreshRotates) }

func testDelegationRefreshRotates(t *testing.T, backend string) {
	x := newREnvOn(t, backend)
	body := x.delegateOffline(t)
	rt, _ := body["refresh_token"].(string)
	if !strings.HasPrefix(rt, "sgn_rt_") || body["issued_token_type"] != typeAT || body["token_type"] != "Bearer" {
		t.Fatalf("response %v: want an access token with an sgn_rt_ refresh token", body)
	}
	first := x.introspect(t, body["access_token"].(string))
	session := first["signet_exchange"].(map[string]any)["session"].(string)

	tok, re := x.refresh(t, x.offline, rt)
	if re != nil {
		t.Fatalf("refresh refused: %v", re)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == rt || tok.AccessToken == body["access_token"] {
		t.Fatalf("refresh must rotate both tokens: %+v", tok)
	}
	got := x.introspect(t, tok.AccessToken)
	act, _ := got["act"].(map[string]any)
	if got["active"] != true || got["sub"] != x.dana.ID || act["sub"] != x.agent.ID || got["scope"] != "read write" ||
		got["signet_exchange"].(map[string]any)["session"] != session {
		t.Fatalf("refreshed token must keep subject, act, scope and session: %v", got)
	}
	if exp := int64(got["exp"].(float64)); exp > time.Now().Add(time.Hour+time.Minute).Unix() {
		t.Fatalf("refreshed token lives until %d: more than the rule's max_ttl", exp)
	}
	var refreshed []store.AuditEvent
	for _, e := range x.audits(t, "token.issued") {
		if strings.Contains(string(e.Details), `"grant":"refresh_token"`) && strings.Contains(string(e.Details), session) {
			refreshed = append(refreshed, e)
		}
	}
	if len(refreshed) != 1 || refreshed[0].Actor != x.agent.ID || refreshed[0].Subject != x.dana.ID || refreshed[0].Client != x.offline.ID {
		t.Fatalf("a refresh is audited once with actor, subject, client and session: %+v", refreshed)
	}
	// The new refresh token works in turn; narrowing the scope is allowed, widening is not.
	code, narrow := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": tok.RefreshToken, "scope": "read"}, x.offline.ID, x.offline.Secret)
	if code != 200 || narrow["scope"] != "read" {
		t.Fatalf("narrowing the scope on refresh: %d %v", code, narrow)
	}
	if got := x.introspect(t, narrow["access_token"].(string)); got["scope"] != "read" {
		t.Fatalf("narrowed token: %v", got)
	}
	code, wide := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": narrow["refresh_token"].(string), "scope": "read write admin"}, x.offline.ID, x.offline.Secret)
	if code != 400 || wide["error"] != "invalid_scope" {
		t.Fatalf("widening the scope on refresh: %d %v", code, wide)
	}
}

// TestRefreshTokenReuseRevokesTheGrant: presenting a rotated refresh token again is theft by
// assumption; the grant's every token becomes inactive and the event is audited.
func TestRefreshTokenReuseRevokesTheGrant(t *testing.T) {
	onBackends(t, testRefreshTokenReuseRevokesTheGrant)
}

func testRefreshTokenReuseRevokesTheGrant(t *testing.T, backend string) {
	x := newREnvOn(t, backend)
	body := x.delegateOffline(t)
	rt := body["refresh_token"].(string)
	tok, re := x.refresh(t, x.offline, rt)
	if re != nil {
		t.Fatal(re)
	}
	// A second use within RefreshRaceWindow is a lost race (a retry): refused, nothing revoked.
	_, re = x.refresh(t, x.offline, rt)
	wantRefused(t, re, "invalid_grant", "used by a concurrent request")
	if got := x.introspect(t, tok.AccessToken); got["active"] != true {
		t.Fatalf("a lost race revoked the winner's token: %v", got)
	}
	// Past the window it is a replay: the whole grant is revoked.
	x.Server.OAuth.Now = func() time.Time { return time.Now().Add(oauth.RefreshRaceWindow + time.Second) }
	_, re = x.refresh(t, x.offline, rt)
	wantRefused(t, re, "invalid_grant", "already used")
	x.Server.OAuth.Now = time.Now
	for name, raw := range map[string]string{"first access token": body["access_token"].(string), "refreshed access token": tok.AccessToken} {
		if got := x.introspect(t, raw); got["active"] != false {
			t.Errorf("%s is still active after refresh token reuse: %v", name, got)
		}
	}
	_, re = x.refresh(t, x.offline, tok.RefreshToken)
	wantRefused(t, re, "invalid_grant", "revoked")
	var reuse int
	for _, e := range x.audits(t, "token.revoked") {
		if strings.Contains(string(e.Details), "refresh token reuse") {
			reuse++
		}
	}
	if reuse != 1 {
		t.Fatalf("%d reuse events audited, want 1", reuse)
	}
}

// TestConcurrentRefreshHasOneWinner: racing uses of one refresh token yield exactly one new token
// pair; the losers are refused as a lost race and revoke nothing (RefreshRaceWindow).
func TestConcurrentRefreshHasOneWinner(t *testing.T) {
	onBackends(t, testConcurrentRefreshHasOneWinner)
}

func testConcurrentRefreshHasOneWinner(t *testing.T, backend string) {
	x := newREnvOn(t, backend)
	rt := x.delegateOffline(t)["refresh_token"].(string)
	const n = 6
	var wg sync.WaitGroup
	type answer struct {
		code int
		body map[string]any
	}
	answers := make(chan answer, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": rt}, x.offline.ID, x.offline.Secret)
			answers <- answer{code, body}
		}()
	}
	wg.Wait()
	close(answers)
	var winners []map[string]any
	for a := range answers {
		switch {
		case a.code == 200:
			winners = append(winners, a.body)
		case a.code != 400 || a.body["error"] != "invalid_grant" || !strings.Contains(a.body["error_description"].(string), "concurrent request"):
			t.Fatalf("a loser must be refused as a lost race: %d %v", a.code, a.body)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded; exactly one must", len(winners))
	}
	// Each lost race is audited as a refused continuation of the session; only the winner as issued.
	if denied := len(x.audits(t, audit.TypeExchangeDenied)); denied != n-1 {
		t.Fatalf("%d refusals audited for %d lost races", denied, n-1)
	}
	issued := 0
	for _, e := range x.audits(t, audit.TypeTokenIssued) {
		if strings.Contains(string(e.Details), `"grant":"refresh_token"`) {
			issued++
		}
	}
	if issued != 1 {
		t.Fatalf("%d refreshes audited as issued; exactly the winner's must be", issued)
	}
	// The losers revoked nothing: the winner's new tokens work.
	if got := x.introspect(t, winners[0]["access_token"].(string)); got["active"] != true {
		t.Fatalf("the winner's access token is dead on arrival: %v", got)
	}
	if _, re := x.refresh(t, x.offline, winners[0]["refresh_token"].(string)); re != nil {
		t.Fatalf("the winner's refresh token must work: %v", re)
	}
}

// TestAuditFailureDuringRefreshIssuesNoToken: when the audit event of a refresh cannot be written,
// the refresh fails with no token, the refresh token is not consumed, and once the audit log is
// back the same refresh token works (with its event).
func TestAuditFailureDuringRefreshIssuesNoToken(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		x := newREnvOn(t, backend)
		rt := x.delegateOffline(t)["refresh_token"].(string)
		working := x.Server.OAuth.Tokens
		failing := tokens.New(tokens.Config{Issuer: x.Server.Config.Issuer, Store: failingAudit{x.Server.Store}, Keys: x.Server.Keys,
			Secrets: x.Server.Secrets, Leeway: x.Server.Config.Leeway, Principals: x.Server.Dir})
		if err := failing.LoadRevocations(context.Background()); err != nil {
			t.Fatal(err)
		}
		refreshes := func() int {
			n := 0
			for _, e := range x.audits(t, audit.TypeTokenIssued) {
				if strings.Contains(string(e.Details), `"grant":"refresh_token"`) {
					n++
				}
			}
			return n
		}
		x.Server.OAuth.Tokens = failing
		code, body := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": rt}, x.offline.ID, x.offline.Secret)
		x.Server.OAuth.Tokens = working
		if code != 500 || body["error"] != "server_error" || body["access_token"] != nil || body["refresh_token"] != nil {
			t.Fatalf("want server_error and no token, got %d %v", code, body)
		}
		if n := refreshes(); n != 0 {
			t.Fatalf("%d refreshes audited for a refresh that failed", n)
		}
		tok, re := x.refresh(t, x.offline, rt)
		if re != nil {
			t.Fatalf("a refresh that failed must not consume the refresh token: %v", re)
		}
		if got := x.introspect(t, tok.AccessToken); got["active"] != true {
			t.Fatalf("the retried refresh's token: %v", got)
		}
		if n := refreshes(); n != 1 {
			t.Fatalf("%d refreshes audited, want the retried one", n)
		}
	})
}

// TestRefreshRefusals: each way a refresh token can stop being usable, with its precise reason, on
// both backends. Where the refusal must outlast the revocation entry (a kill switch, a switch turned
// back on, an ended session), it is checked again once the entry is pruned: the session record and
// the setting keep refusing.
func TestRefreshRefusals(t *testing.T) {
	onBackends(t, testRefreshRefusals)
}

func testRefreshRefusals(t *testing.T, backend string) {
	ctx := context.Background()
	impersonate := func(x *renv) string {
		samToken := x.Token(store.KindUser, x.sam.ID, x.helpdesk.Client, "read")
		code, body := x.exchangeAs(x.helpdesk, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
			"actor_token": samToken, "actor_token_type": typeAT, "audience": x.api.ID, "requested_token_type": typeRT})
		if code != 200 {
			t.Fatalf("impersonation with refresh refused: %v", body)
		}
		return body["refresh_token"].(string)
	}
	for _, tc := range []struct {
		name         string
		setup        func(x *renv) (testenv.Client, string)
		code, reason string
		pruned       string // the refusal once the revocation entries are pruned; empty: not checked
	}{
		{"another client", func(x *renv) (testenv.Client, string) {
			return x.helpdesk, x.delegateOffline(t)["refresh_token"].(string)
		},
			"invalid_grant", "issued to another client", ""},
		{"an access token in its place", func(x *renv) (testenv.Client, string) {
			return x.offline, x.delegateOffline(t)["access_token"].(string)
		}, "invalid_grant", "is an access token", ""},
		{"made up", func(x *renv) (testenv.Client, string) { return x.offline, "sgn_rt_" + strings.Repeat("A", 43) },
			"invalid_grant", "not a refresh token issued by", ""},
		{"kill switch", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			if err := x.Server.Sessions.Disable(ctx, "ops", "incident"); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", "revoked", "was ended at"},
		{"kill switch flipped back on", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			if err := x.Server.Sessions.Disable(ctx, "ops", "incident"); err != nil {
				t.Fatal(err)
			}
			if err := x.Server.Sessions.Enable(ctx, "ops", "resolved"); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", "revoked", "was ended at"},
		{"session ended", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			if _, err := x.Server.Sessions.EndActor(ctx, x.sam.ID, "ops", "shift over"); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", "revoked", "was ended at"},
		{"rule removed", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			if err := x.Server.Policy.Remove(ctx, "helpdesk-sessions"); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", `rule "helpdesk-sessions", which allowed impersonation session`, ""},
		{"rule no longer allows refresh", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			r := exchange.Rule{Name: "helpdesk-sessions", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
				Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{x.helpdesk.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}}
			if err := x.Server.Policy.Put(ctx, r); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", "allow_refresh is off", ""},
		{"actor lost the role", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			if err := x.Server.Store.RevokeRole(ctx, store.KindUser, x.sam.ID, "support"); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", "is not among its actors", ""},
		{"subject locked", func(x *renv) (testenv.Client, string) {
			rt := impersonate(x)
			x.dana.Locked = true
			if err := x.Server.Store.UpdateUser(ctx, x.dana); err != nil {
				t.Fatal(err)
			}
			return x.helpdesk, rt
		}, "invalid_grant", "is locked", ""},
		{"revoked at the revocation endpoint", func(x *renv) (testenv.Client, string) {
			body := x.delegateOffline(t)
			rt := body["refresh_token"].(string)
			if code, body := x.PostForm("/oauth/v2/revoke", map[string]string{"token": rt, "token_type_hint": "refresh_token"}, x.offline.ID, x.offline.Secret); code != 200 {
				t.Fatalf("revoke: %d %v", code, body)
			}
			if got := x.introspect(t, body["access_token"].(string)); got["active"] != false {
				t.Fatalf("revoking a refresh token revokes its grant's access tokens (RFC 7009 §2.1): %v", got)
			}
			if ev := x.audits(t, "token.revoked"); len(ev) != 1 || ev[0].Client != x.offline.ID || !strings.Contains(string(ev[0].Details), `"kind":"grant"`) {
				t.Fatalf("the revocation is audited with its grant: %+v", ev)
			}
			return x.offline, rt
		}, "invalid_grant", "revoked", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newREnvOn(t, backend)
			c, rt := tc.setup(x)
			x.Server.Watcher.Poll(ctx) // apply store changes now, as the change feed would within 250 ms
			before := len(x.audits(t, "exchange.denied"))
			_, re := x.refresh(t, c, rt)
			wantRefused(t, re, tc.code, tc.reason)
			// A refused attempt to continue a session is audited; garbage that names no session is not.
			names := tc.name != "made up" && tc.name != "an access token in its place"
			if got := len(x.audits(t, "exchange.denied")) - before; got != map[bool]int{true: 1, false: 0}[names] {
				t.Fatalf("%d denials audited for this refusal", got)
			}
			if tc.pruned == "" {
				return
			}
			forgetRevocations(t, x.Env)
			_, re = x.refresh(t, c, rt)
			wantRefused(t, re, tc.code, tc.pruned)
		})
	}
}

// TestRefreshTokenRequestRefusals: where no refresh token may be issued, the exchange says why.
func TestRefreshTokenRequestRefusals(t *testing.T) {
	x := newREnv(t)
	for _, tc := range []struct {
		name         string
		c            testenv.Client
		form         map[string]string
		code, reason string
	}{
		{"rule without allow_refresh", x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
			"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID}, "invalid_request", `rule "agents-act-for-users" does not allow refresh tokens`},
		{"down-scoping", x.offline, map[string]string{"subject_token": x.offlineAgentToken, "subject_token_type": typeAT}, "invalid_request", "down-scoping never yields a refresh token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form["requested_token_type"] = typeRT
			code, body := x.exchangeAs(tc.c, tc.form)
			if code != 400 || body["error"] != tc.code || !strings.Contains(body["error_description"].(string), tc.reason) {
				t.Fatalf("%d %v; want %s containing %q", code, body, tc.code, tc.reason)
			}
		})
	}
	// A client without the refresh_token grant is told how to add it.
	noGrant := x.CreateClient(store.Client{Name: "no-refresh", GrantTypes: []string{grantTE}})
	rule := exchange.Rule{Name: "no-refresh-client", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{noGrant.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}, AllowRefresh: true}
	if err := x.Server.Policy.Put(context.Background(), rule); err != nil {
		t.Fatal(err)
	}
	code, body := x.exchangeAs(noGrant, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.Token(store.KindServiceAccount, x.agent.ID, noGrant.Client, "read"), "actor_token_type": typeAT, "requested_token_type": typeRT})
	if code != 400 || body["error"] != "unauthorized_client" || !strings.Contains(body["error_description"].(string), "--add-grant refresh_token") {
		t.Fatalf("%d %v", code, body)
	}
}
