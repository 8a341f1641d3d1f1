package oauth_test

// Red-team tests: each walks an attacker's (or a careless operator's) path against a running
// provider and asserts one of the token-exchange guarantees. A failing test is a break.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
	"github.com/signet-id/signet/internal/tokens"
)

// redenv is renv plus a gateway that may introspect every token and the admin API's audience.
type redenv struct {
	*renv
	gw       testenv.Client
	adminAud string
}

func newRed(t *testing.T) *redenv {
	x := &redenv{renv: newREnv(t)}
	x.gw = x.CreateClient(store.Client{Name: "gateway", Roles: []string{"introspect-any"}})
	x.adminAud = oauth.AdminAudience(x.Server.Config.Issuer)
	return x
}

// active introspects as the gateway (introspect:any).
func (x *redenv) active(t *testing.T, raw string) bool {
	t.Helper()
	code, body := x.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, x.gw.ID, x.gw.Secret)
	if code != 200 {
		t.Fatalf("introspection answered %d %v", code, body)
	}
	return body["active"] == true
}

func (x *redenv) info(t *testing.T, raw string) map[string]any {
	t.Helper()
	_, body := x.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, x.gw.ID, x.gw.Secret)
	return body
}

// userinfo returns the status of GET /oidc/v1/userinfo with the Bearer token.
func (x *redenv) userinfo(t *testing.T, raw string) (int, map[string]any) {
	t.Helper()
	return x.Bearer(http.MethodGet, "/oidc/v1/userinfo", raw, nil)
}

// admin calls the admin API with a Bearer token.
func (x *redenv) admin(t *testing.T, raw, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return x.Bearer(method, path, raw, body)
}

func (x *redenv) refreshAs(c testenv.Client, rt string, extra ...string) (int, map[string]any) {
	f := map[string]string{"grant_type": "refresh_token", "refresh_token": rt}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	if c.AuthMethod == store.AuthNone {
		f["client_id"] = c.ID
		return x.PostForm("/oauth/v2/token", f, "", "")
	}
	return x.PostForm("/oauth/v2/token", f, c.ID, c.Secret)
}

// postValues posts a token request with repeated parameters as client c.
func (x *redenv) postValues(t *testing.T, c testenv.Client, v url.Values) (int, map[string]any) {
	t.Helper()
	if c.AuthMethod == store.AuthNone {
		v.Set("client_id", c.ID)
	}
	req, _ := http.NewRequest(http.MethodPost, x.URL+"/oauth/v2/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod != store.AuthNone {
		req.SetBasicAuth(c.ID, c.Secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// ok fails the test unless an exchange or refresh answered 200, and returns access_token.
func redOK(t *testing.T, what string, code int, body map[string]any) string {
	t.Helper()
	if code != 200 {
		t.Fatalf("%s refused: %d %v", what, code, body)
	}
	return body["access_token"].(string)
}

func (x *redenv) poll(t *testing.T) {
	t.Helper()
	if err := x.Server.Watcher.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// rtID is a refresh token's jti, as `signet token explain` shows it to an operator.
func (x *redenv) rtID(t *testing.T, raw string) string {
	t.Helper()
	tok, err := x.Server.Store.GetToken(context.Background(), x.Server.Secrets.HashToken(raw))
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

// assertionFor signs a client assertion (or JWT bearer assertion) with a key file.
func (x *redenv) assertionFor(t *testing.T, kf *keys.KeyFile, owner string) string {
	now := time.Now()
	return sign(t, kf, map[string]any{"iss": owner, "sub": owner, "aud": []string{x.URL}, "iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "jti": secrets.NewID()})
}

func (x *redenv) impersonateHelpdeskWithRefresh(t *testing.T) (access, refresh string) {
	t.Helper()
	samHelp := x.Token(store.KindUser, x.sam.ID, x.helpdesk.Client, "read")
	code, body := x.exchangeAs(x.helpdesk, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": samHelp, "actor_token_type": typeAT, "audience": x.api.ID, "requested_token_type": typeRT})
	redOK(t, "helpdesk impersonation with refresh", code, body)
	return body["access_token"].(string), body["refresh_token"].(string)
}

func redClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64URLDecode(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

// ---------------------------------------------------------------------------------------------
// Guarantee 4: the admin API accepts only tokens for its audience, of a subject holding
// signet:admin, not obtained by exchange.

// TestRedteamAdminAPIAcceptsDownscopedAdminToken: a client holding an admin's admin-API token
// narrows it by token exchange (down-scoping, no actor) and uses the exchanged token at the admin
// API. The token was obtained by exchange, so the admin API must refuse it.
func TestRedteamAdminAPIAcceptsDownscopedAdminToken(t *testing.T) {
	x := newRed(t)
	adminTok := x.AdminToken(store.KindUser, x.olga.ID, x.web.Client) // olga holds signet:admin
	if code, body := x.admin(t, adminTok, "GET", "/admin/v1/policies", nil); code != 200 {
		t.Fatalf("baseline: the admin's own admin token is refused: %d %v", code, body)
	}
	code, body := x.exchangeAs(x.web, map[string]string{"subject_token": adminTok, "subject_token_type": typeAT,
		"audience": x.adminAud, "expires_in": "300"})
	narrowed := redOK(t, "down-scoping the admin token", code, body)
	if info := x.info(t, narrowed); info["active"] != true || info["act"] != nil {
		t.Fatalf("the narrowed token: %v", info)
	}
	code, body = x.admin(t, narrowed, "GET", "/admin/v1/policies", nil)
	if code == 200 {
		t.Errorf("admin API accepted a token obtained by token exchange (down-scoping): %d %v", code, body)
	}
	code, body = x.admin(t, narrowed, "POST", "/admin/v1/impersonation/disable", map[string]any{"reason": "red team"})
	if code == 200 {
		t.Errorf("admin API let an exchanged token flip the kill switch: %d %v", code, body)
	}
}

// TestRedteamAdminAPIRefusesActAndForeignTokens: delegated tokens (act) for the admin audience,
// ID tokens, refresh tokens and admin tokens for another audience are refused.
func TestRedteamAdminAPIRefusesActAndForeignTokens(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	// A careless rule lists the admin API as an audience: delegation yields act + admin audience.
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "agent-admin-aud", Mode: exchange.ModeDelegation,
		Actors: exchange.Selector{ServiceAccounts: []string{"agent"}}, Subjects: exchange.Subjects{Users: []string{"*"}},
		Clients: []string{x.agentApp.ID}, Audiences: []string{x.adminAud}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	olgaWeb := x.Token(store.KindUser, x.olga.ID, x.web.Client, "read")
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": olgaWeb, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.adminAud})
	delegated := redOK(t, "delegation for the admin audience", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": olgaWeb, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.adminAud, "requested_token_type": typeID})
	idTok := redOK(t, "ID token for the admin audience rule", code, body)
	for name, raw := range map[string]string{
		"delegated token with act": delegated, "ID token": idTok, "olga's token for another audience": olgaWeb,
		"garbage": "sgn_at_" + strings.Repeat("A", 43),
	} {
		if code, body := x.admin(t, raw, "GET", "/admin/v1/policies", nil); code == 200 {
			t.Errorf("%s reached the admin API: %v", name, body)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Guarantees 1 and 3: never broader than the lineage allows under the rules in force; refresh
// re-applies the rule in force.

// TestRedteamChildSessionRefreshOutlivesParentRule: support staff impersonate a customer
// (helpdesk rule, with refresh); an agent delegates from that impersonation token and gets its
// own refresh token. The operator then removes the impersonation rule (or takes the support role
// away). The impersonation session can no longer be refreshed, but the agent's child session, whose
// every token still carries act {agent, act {sam}} about the customer, keeps being refreshed.
func TestRedteamChildSessionRefreshOutlivesParentRule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(x *redenv) error
	}{
		{"impersonation rule removed", func(x *redenv) error { return x.Server.Policy.Remove(context.Background(), "helpdesk-sessions") }},
		{"actor lost the support role", func(x *redenv) error {
			return x.Server.Store.RevokeRole(context.Background(), store.KindUser, x.sam.ID, "support")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newRed(t)
			parent, parentRT := x.impersonateHelpdeskWithRefresh(t)
			code, body := x.exchangeAs(x.offline, map[string]string{"subject_token": parent, "subject_token_type": typeAT,
				"actor_token": x.offlineAgentToken, "actor_token_type": typeAT, "audience": x.api.ID, "requested_token_type": typeRT})
			redOK(t, "delegation from the impersonation token", code, body)
			childRT := body["refresh_token"].(string)
			if err := tc.change(x); err != nil {
				t.Fatal(err)
			}
			x.poll(t)
			if code, body := x.refreshAs(x.helpdesk, parentRT); code == 200 {
				t.Fatalf("baseline: the parent impersonation session still refreshes: %v", body)
			}
			code, body = x.refreshAs(x.offline, childRT)
			if code == 200 {
				info := x.info(t, body["access_token"].(string))
				t.Errorf("the child session minted a new token after its parent's rule stopped allowing the impersonation it derives from: %v", info)
			}
		})
	}
}

// TestRedteamDerivingFromExchangedTokenIgnoresRuleInForce: an impersonation token is issued under
// a rule allowing read and write; the operator narrows the rule to read (then removes it). The
// holder still mints new tokens carrying write from the old token: by down-scoping, as an ID token,
// and by handing it to a delegating agent.
func TestRedteamDerivingFromExchangedTokenIgnoresRuleInForce(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	code, body := x.impersonate("ticket 1")
	imp := redOK(t, "impersonation", code, body)
	if body["scope"] != "read write" {
		t.Fatalf("scope %v", body["scope"])
	}
	narrowed := exchange.Rule{Name: "support-impersonates-customers", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
		Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{x.spa.ID, x.backend.ID},
		Audiences: []string{x.api.ID}, Scopes: []string{"read"}, MaxTTL: exchange.Duration(10 * time.Minute), RequireReason: true}
	if err := x.Server.Policy.Put(ctx, narrowed); err != nil {
		t.Fatal(err)
	}
	x.poll(t)
	// The rule in force allows read only: a fresh impersonation asking for write is refused.
	if code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "t", "scope": "write"}); code == 200 {
		t.Fatalf("baseline: the narrowed rule still grants write: %v", body)
	}
	if code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": imp, "subject_token_type": typeAT, "scope": "write"}); code == 200 {
		t.Errorf("down-scoping minted a new impersonation token with scope %q after the rule in force stopped allowing it", body["scope"])
	}
	if code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": imp, "subject_token_type": typeAT, "scope": "write",
		"requested_token_type": typeID}); code == 200 {
		t.Errorf("down-scoping minted an impersonation ID token with scope %q after the rule in force stopped allowing it", body["scope"])
	}
	offlineAgent := x.offlineAgentToken
	if code, body := x.exchangeAs(x.offline, map[string]string{"subject_token": imp, "subject_token_type": typeAT,
		"actor_token": offlineAgent, "actor_token_type": typeAT, "audience": x.api.ID, "scope": "write"}); code == 200 {
		t.Errorf("a delegation from the impersonation token got scope %q that the impersonation rule in force no longer allows", body["scope"])
	}
	if err := x.Server.Policy.Remove(ctx, "support-impersonates-customers"); err != nil {
		t.Fatal(err)
	}
	x.poll(t)
	if code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": imp, "subject_token_type": typeAT}); code == 200 {
		t.Errorf("down-scoping minted a new impersonation token after its rule was removed: scope %q", body["scope"])
	}
}

// TestRedteamRefreshIgnoresActorTokenClientsRemoval: a confidential backend may present staff
// tokens issued to the admin SPA because the rule lists the SPA in actor_token_clients. The
// operator removes that permission; new exchanges are refused, but the refresh token obtained
// under it keeps the session going.
func TestRedteamRefreshIgnoresActorTokenClientsRemoval(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	backend2 := x.CreateClient(store.Client{Name: "helpdesk-backend", GrantTypes: []string{grantTE, "refresh_token"}})
	rule := exchange.Rule{Name: "backend-via-spa", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
		Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{backend2.ID}, ActorTokenClients: []string{x.spa.ID},
		Audiences: []string{x.api.ID}, Scopes: []string{"read"}, AllowRefresh: true}
	if err := x.Server.Policy.Put(ctx, rule); err != nil {
		t.Fatal(err)
	}
	form := func() map[string]string {
		return map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser, "actor_token": x.samToken,
			"actor_token_type": typeAT, "audience": x.api.ID, "requested_token_type": typeRT}
	}
	code, body := x.exchangeAs(backend2, form())
	redOK(t, "impersonation with an SPA actor token", code, body)
	rt := body["refresh_token"].(string)
	rule.ActorTokenClients = nil
	if err := x.Server.Policy.Put(ctx, rule); err != nil {
		t.Fatal(err)
	}
	x.poll(t)
	if code, body := x.exchangeAs(backend2, form()); code != 400 || body["error"] != "unauthorized_client" {
		t.Fatalf("baseline: the rule in force no longer binds SPA actor tokens to this backend: %d %v", code, body)
	}
	if code, body := x.refreshAs(backend2, rt); code == 200 {
		t.Errorf("refresh continued a session whose actor token binding the rule in force no longer allows: %v", x.info(t, body["access_token"].(string)))
	}
}

// TestRedteamRefreshReappliesNarrowedRule: scope, audience, max_ttl, disabling and excluding the
// subject, changed between the exchange and the refresh.
func TestRedteamRefreshReappliesNarrowedRule(t *testing.T) {
	base := func(x *redenv) exchange.Rule {
		return exchange.Rule{Name: "agents-act-offline", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
			Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{x.offline.ID}, Audiences: []string{x.api.ID},
			Scopes: []string{"read", "write"}, AllowRefresh: true, RefreshTTL: exchange.Duration(2 * time.Hour)}
	}
	for _, tc := range []struct {
		name   string
		change func(x *redenv, r *exchange.Rule)
		check  func(t *testing.T, x *redenv, code int, body map[string]any)
	}{
		{"scope narrowed", func(x *redenv, r *exchange.Rule) { r.Scopes = []string{"read"} }, func(t *testing.T, x *redenv, code int, body map[string]any) {
			if code != 200 || body["scope"] != "read" {
				t.Errorf("want scope read after narrowing, got %d %v", code, body)
			}
		}},
		{"max_ttl shortened", func(x *redenv, r *exchange.Rule) { r.MaxTTL = exchange.Duration(2 * time.Minute) }, func(t *testing.T, x *redenv, code int, body map[string]any) {
			if code != 200 || body["expires_in"].(float64) > 120 {
				t.Errorf("want expires_in <= 120, got %d %v", code, body)
			}
		}},
		{"audience replaced", func(x *redenv, r *exchange.Rule) { r.Audiences = []string{x.backend.ID} }, func(t *testing.T, x *redenv, code int, body map[string]any) {
			if code == 200 {
				t.Errorf("refresh kept an audience the rule no longer lists: %v", body)
			}
		}},
		{"rule disabled", func(x *redenv, r *exchange.Rule) { r.Disabled = true }, func(t *testing.T, x *redenv, code int, body map[string]any) {
			if code == 200 {
				t.Errorf("refresh under a disabled rule: %v", body)
			}
		}},
		{"subject excluded", func(x *redenv, r *exchange.Rule) { r.Subjects.ExcludeUsers = []string{"dana"} }, func(t *testing.T, x *redenv, code int, body map[string]any) {
			if code == 200 {
				t.Errorf("refresh for a subject the rule now excludes: %v", body)
			}
		}},
		{"refresh_ttl shortened below the session's age", func(x *redenv, r *exchange.Rule) {
			r.RefreshTTL = exchange.Duration(time.Second)
			r.MaxTTL = exchange.Duration(time.Second)
			time.Sleep(1100 * time.Millisecond)
		}, func(t *testing.T, x *redenv, code int, body map[string]any) {
			if code == 200 {
				t.Errorf("refresh past the rule's refresh_ttl: %v", body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newRed(t)
			rt := x.delegateOffline(t)["refresh_token"].(string)
			r := base(x)
			tc.change(x, &r)
			if err := x.Server.Policy.Put(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			x.poll(t)
			code, body := x.refreshAs(x.offline, rt)
			tc.check(t, x, code, body)
		})
	}
}

// TestRedteamIDTokenRouteCannotWiden: an ID token minted by exchange carries the scope of its
// origin; sent back as subject_token it cannot widen scope, drop an actor, leave its session or be
// used by another client.
func TestRedteamIDTokenRouteCannotWiden(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "agent2-wide", Mode: exchange.ModeDelegation,
		Actors: exchange.Selector{ServiceAccounts: []string{"agent2"}}, Subjects: exchange.Subjects{Users: []string{"*"}},
		Clients: []string{x.agentApp.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read", "write"}}); err != nil {
		t.Fatal(err)
	}
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "requested_token_type": typeID, "scope": "read"})
	idTok := redOK(t, "delegation as ID token", code, body)
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read", "write")
	del := func(scope string) (int, map[string]any) {
		f := map[string]string{"subject_token": idTok, "subject_token_type": typeID, "actor_token": agent2Token, "actor_token_type": typeAT, "audience": x.api.ID}
		if scope != "" {
			f["scope"] = scope
		}
		return x.exchangeAs(x.agentApp, f)
	}
	if code, body := del("write"); code == 200 {
		t.Errorf("the ID token route widened read to write: %v", body)
	}
	code, body = del("")
	tok := redOK(t, "delegation from the ID token", code, body)
	info := x.info(t, tok)
	act, _ := info["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if info["scope"] != "read" || act["sub"] != x.agent2.ID || inner["sub"] != x.agent.ID {
		t.Errorf("the ID token route must keep scope read and the whole act chain: %v", info)
	}
	// Impersonation from an impersonation's ID token, and another client presenting it.
	code, body = x.exchangeAs(x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": x.samToken, "actor_token_type": typeAT, "reason": "t", "requested_token_type": typeID, "scope": "read"})
	impID := redOK(t, "impersonation as ID token", code, body)
	samBackend := x.Token(store.KindUser, x.sam.ID, x.backend.Client, "read", "write")
	for name, c := range map[string]struct {
		client testenv.Client
		form   map[string]string
	}{
		"re-impersonating from the impersonation ID token": {x.spa, map[string]string{"subject_token": impID, "subject_token_type": typeID,
			"actor_token": x.samToken, "actor_token_type": typeAT, "reason": "t", "scope": "write"}},
		"another client presenting the SPA's ID token": {x.backend, map[string]string{"subject_token": impID, "subject_token_type": typeID,
			"actor_token": samBackend, "actor_token_type": typeAT, "reason": "t"}},
		"ID token as actor_token": {x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
			"actor_token": impID, "actor_token_type": typeJWT, "reason": "t"}},
	} {
		if code, body := x.exchangeAs(c.client, c.form); code == 200 {
			t.Errorf("%s was allowed: %v", name, body)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Guarantee 7: revocation follows lineage.

// TestRedteamRevokeParentReachesEveryChild: the web app revokes the user's token at
// /oauth/v2/revoke; everything derived from it (down-scoped, delegated, re-delegated, ID token,
// refresh token and its refreshed access token) stops working.
func TestRedteamRevokeParentReachesEveryChild(t *testing.T) {
	x := newRed(t)
	code, body := x.exchangeAs(x.web, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "scope": "read"})
	narrowed := redOK(t, "down-scoping", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	delegated := redOK(t, "delegation", code, body)
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": delegated, "subject_token_type": typeJWT,
		"actor_token": agent2Token, "actor_token_type": typeAT})
	grandchild := redOK(t, "re-delegation", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "requested_token_type": typeID})
	idTok := redOK(t, "ID token", code, body)
	offline := x.delegateOffline(t)
	code, refreshed := x.refreshAs(x.offline, offline["refresh_token"].(string))
	redOK(t, "refresh", code, refreshed)

	if code, body := x.PostForm("/oauth/v2/revoke", map[string]string{"token": x.danaToken}, x.web.ID, x.web.Secret); code != 200 {
		t.Fatalf("revoke: %d %v", code, body)
	}
	for name, raw := range map[string]string{"down-scoped": narrowed, "delegated": delegated, "re-delegated": grandchild,
		"offline delegated": offline["access_token"].(string), "refreshed": refreshed["access_token"].(string)} {
		if x.active(t, raw) {
			t.Errorf("%s child of a revoked token is active", name)
		}
		if code, _ := x.userinfo(t, raw); code == 200 {
			t.Errorf("%s child of a revoked token works at userinfo", name)
		}
	}
	if code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeID,
		"actor_token": agent2Token, "actor_token_type": typeAT}); code == 200 {
		t.Errorf("ID token minted from a revoked token is still exchangeable: %v", body)
	}
	if code, body := x.refreshAs(x.offline, refreshed["refresh_token"].(string)); code == 200 {
		t.Errorf("refresh token derived from a revoked token still refreshes: %v", body)
	}
}

// TestRedteamRevokingRefreshTokenByJTIMissesRefreshedTokens: the operator looks up a leaked
// refresh token with `signet token explain` and revokes it by its jti (`signet token revoke
// --jti`). The refreshed access token it produced and its rotated successor live on.
func TestRedteamRevokingRefreshTokenByJTIMissesRefreshedTokens(t *testing.T) {
	x := newRed(t)
	rt1 := x.delegateOffline(t)["refresh_token"].(string)
	code, refreshed := x.refreshAs(x.offline, rt1)
	at1 := redOK(t, "refresh", code, refreshed)
	rt2 := refreshed["refresh_token"].(string)
	now := time.Now()
	if err := x.Server.Tokens.Revoke(context.Background(), store.Revocation{Kind: store.RevokeTokenID, Value: x.rtID(t, rt1),
		At: now, ExpiresAt: now.Add(25 * time.Hour), Reason: "signet token revoke --jti"}); err != nil {
		t.Fatal(err)
	}
	if x.active(t, at1) {
		t.Errorf("the access token refreshed from a revoked refresh token is still active")
	}
	if code, body := x.refreshAs(x.offline, rt2); code == 200 {
		t.Errorf("the successor of a revoked refresh token still refreshes: %v", body)
	}
}

// TestRedteamRevokeEndpointIgnoresIDTokens: a client asks /oauth/v2/revoke to revoke an ID token it
// holds; the answer is 200, but the ID token keeps working as a subject_token.
func TestRedteamRevokeEndpointIgnoresIDTokens(t *testing.T) {
	x := newRed(t)
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "requested_token_type": typeID})
	idTok := redOK(t, "ID token", code, body)
	if code, body := x.PostForm("/oauth/v2/revoke", map[string]string{"token": idTok}, x.agentApp.ID, x.agentApp.Secret); code != 200 {
		t.Fatalf("revoke: %d %v", code, body)
	}
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	if code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeID,
		"actor_token": agent2Token, "actor_token_type": typeAT}); code == 200 {
		t.Errorf("revocation answered 200, yet the ID token is still accepted as subject_token: %v", x.info(t, body["access_token"].(string)))
	}
}

// TestRedteamAnotherClientsTokens: another client can neither refresh nor revoke a client's
// tokens; its revocation attempts answer 200 and change nothing, and its refresh attempt does not
// count as reuse.
func TestRedteamAnotherClientsTokens(t *testing.T) {
	x := newRed(t)
	body := x.delegateOffline(t)
	at, rt := body["access_token"].(string), body["refresh_token"].(string)
	if code, body := x.refreshAs(x.helpdesk, rt); code != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("another client refreshed: %d %v", code, body)
	}
	for _, raw := range []string{rt, at} {
		if code, body := x.PostForm("/oauth/v2/revoke", map[string]string{"token": raw}, x.helpdesk.ID, x.helpdesk.Secret); code != 200 {
			t.Errorf("revocation of another client's token must answer 200: %d %v", code, body)
		}
	}
	if !x.active(t, at) {
		t.Error("another client revoked the access token")
	}
	if code, body := x.refreshAs(x.offline, rt); code != 200 {
		t.Errorf("another client's attempts spoiled the refresh token: %d %v", code, body)
	}
	// Unknown tokens answer the same.
	if code, _ := x.PostForm("/oauth/v2/revoke", map[string]string{"token": "sgn_rt_" + strings.Repeat("B", 43)}, x.helpdesk.ID, x.helpdesk.Secret); code != 200 {
		t.Errorf("unknown refresh token: %d", code)
	}
}

// ---------------------------------------------------------------------------------------------
// Guarantee 2: one actor, one session.

// TestRedteamEndActorReachesEverythingTheyActIn: the admin API ends the agent's sessions; the
// agent's delegated tokens, the tokens agent2 re-delegated from them (agent2's own session) and
// the agent's refresh tokens stop, while agent2's unrelated session stays.
func TestRedteamEndActorReachesEverythingTheyActIn(t *testing.T) {
	x := newRed(t)
	adminTok := x.AdminToken(store.KindUser, x.olga.ID, x.web.Client)
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT})
	delegated := redOK(t, "delegation", code, body)
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": delegated, "subject_token_type": typeAT,
		"actor_token": agent2Token, "actor_token_type": typeAT})
	grandchild := redOK(t, "re-delegation", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": agent2Token, "actor_token_type": typeAT})
	unrelated := redOK(t, "agent2's own delegation", code, body)
	offline := x.delegateOffline(t)

	s1 := x.info(t, delegated)["signet_exchange"].(map[string]any)["session"]
	s2 := x.info(t, grandchild)["signet_exchange"].(map[string]any)["session"]
	if s1 == s2 {
		t.Fatalf("agent2 joined the agent's session %v", s1)
	}
	_, list := x.admin(t, adminTok, "GET", "/admin/v1/impersonations", nil)
	for _, s := range list["sessions"].([]any) {
		m := s.(map[string]any)
		if m["ID"] == s2 && m["Actor"] != x.agent2.ID {
			t.Errorf("session %v is owned by %v, not by its outermost actor agent2", s2, m["Actor"])
		}
	}
	if code, body := x.admin(t, adminTok, "POST", "/admin/v1/impersonations/end", map[string]any{"actor": x.agent.ID, "reason": "compromised"}); code != 200 {
		t.Fatalf("end actor: %d %v", code, body)
	}
	for name, raw := range map[string]string{"delegated": delegated, "re-delegated by agent2": grandchild, "offline": offline["access_token"].(string)} {
		if x.active(t, raw) {
			t.Errorf("%s token is active after the agent's sessions ended", name)
		}
	}
	if code, body := x.refreshAs(x.offline, offline["refresh_token"].(string)); code == 200 {
		t.Errorf("the agent's refresh token survived: %v", body)
	}
	if !x.active(t, unrelated) {
		t.Error("ending the agent's sessions ended agent2's unrelated session")
	}
}

// TestRedteamExchangedTokensCannotAct: impersonation and delegation tokens in every shape
// (JWT, opaque, down-scoped, refreshed) are refused as actor_token, and an impersonation token
// (or its ID token) cannot seed another impersonation.
func TestRedteamExchangedTokensCannotAct(t *testing.T) {
	x := newRed(t)
	code, body := x.impersonate("t")
	impJWT := redOK(t, "impersonation", code, body)
	impOpaque, impRT := x.impersonateHelpdeskWithRefresh(t)
	code, body = x.refreshAs(x.helpdesk, impRT)
	impRefreshed := redOK(t, "refresh", code, body)
	code, body = x.exchangeAs(x.spa, map[string]string{"subject_token": impJWT, "subject_token_type": typeAT, "scope": "read"})
	impNarrow := redOK(t, "down-scoping", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT})
	delegated := redOK(t, "delegation", code, body)
	for name, c := range map[string]struct {
		client testenv.Client
		actor  string
	}{
		"impersonation JWT": {x.spa, impJWT}, "impersonation opaque": {x.helpdesk, impOpaque}, "refreshed impersonation": {x.helpdesk, impRefreshed},
		"down-scoped impersonation": {x.spa, impNarrow}, "delegated token": {x.agentApp, delegated},
	} {
		code, body := x.exchangeAs(c.client, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
			"actor_token": c.actor, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "t"})
		if code == 200 {
			t.Errorf("%s acted: %v", name, body)
		}
	}
	// Seeding impersonation from an impersonation token: a second support member would drop the
	// first actor from act (or join their session).
	sue := x.CreateUser("sue", "support")
	sueSPA := x.Token(store.KindUser, sue.ID, x.spa.Client, "read", "write")
	if code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": impJWT, "subject_token_type": typeAT,
		"actor_token": sueSPA, "actor_token_type": typeAT, "reason": "t"}); code == 200 {
		t.Errorf("a second actor impersonated from the first actor's impersonation token: %v", x.info(t, body["access_token"].(string)))
	}
}

// TestRedteamDelegationChainsKeepEveryActor: every route into a second delegation (JWT, opaque
// impersonation token, refreshed token, down-scoped token) keeps the earlier actors nested in act.
func TestRedteamDelegationChainsKeepEveryActor(t *testing.T) {
	x := newRed(t)
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	impOpaque, _ := x.impersonateHelpdeskWithRefresh(t)
	offline := x.delegateOffline(t)
	code, refreshed := x.refreshAs(x.offline, offline["refresh_token"].(string))
	offRefreshed := redOK(t, "refresh", code, refreshed)
	code, body := x.exchangeAs(x.offline, map[string]string{"subject_token": offRefreshed, "subject_token_type": typeAT, "scope": "read"})
	offNarrow := redOK(t, "down-scoping", code, body)
	for name, c := range map[string]struct {
		subject, innerActor string
	}{
		"opaque impersonation token":  {impOpaque, x.sam.ID},
		"refreshed delegated token":   {offRefreshed, x.agent.ID},
		"down-scoped refreshed token": {offNarrow, x.agent.ID},
	} {
		code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": c.subject, "subject_token_type": typeAT,
			"actor_token": agent2Token, "actor_token_type": typeAT})
		tok := redOK(t, name, code, body)
		info := x.info(t, tok)
		act, _ := info["act"].(map[string]any)
		inner, _ := act["act"].(map[string]any)
		if act["sub"] != x.agent2.ID || inner["sub"] != c.innerActor || info["sub"] != x.dana.ID {
			t.Errorf("%s: the chain dropped an actor: %v", name, info)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Guarantee 6: locked users, disabled or deleted clients.

// TestRedteamLockUnlockDoesNotResurrect: `signet user lock dana` (UpdateUser + RetirePrincipal),
// then `signet user unlock dana`: nothing issued before the lock works again anywhere.
func TestRedteamLockUnlockDoesNotResurrect(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT})
	delegated := redOK(t, "delegation", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "requested_token_type": typeID})
	idTok := redOK(t, "ID token", code, body)
	offline := x.delegateOffline(t)
	imp, impRT := x.impersonateHelpdeskWithRefresh(t)
	danaOpaque := x.Token(store.KindUser, x.dana.ID, x.backend.Client, "read")

	lock := func(locked bool) {
		x.dana.Locked = locked
		if err := x.Server.Store.UpdateUser(ctx, x.dana); err != nil {
			t.Fatal(err)
		}
		if locked {
			if err := x.Server.Sessions.RetirePrincipal(ctx, store.KindUser, x.dana.ID, "ops", "user dana locked", x.Server.Config.MaxAccessTTL); err != nil {
				t.Fatal(err)
			}
		}
		x.poll(t)
	}
	all := map[string]string{"dana's token": x.danaToken, "dana's opaque token": danaOpaque, "delegated": delegated,
		"offline delegated": offline["access_token"].(string), "impersonation": imp}
	lock(true)
	for name, raw := range all {
		if code, _ := x.userinfo(t, raw); code == 200 {
			t.Errorf("locked: %s works at userinfo", name)
		}
	}
	time.Sleep(1100 * time.Millisecond) // unlock in a later second than the lock
	lock(false)
	for name, raw := range all {
		if x.active(t, raw) {
			t.Errorf("after unlock: %s is active again", name)
		}
		if code, _ := x.userinfo(t, raw); code == 200 {
			t.Errorf("after unlock: %s works at userinfo", name)
		}
	}
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	for name, f := range map[string]map[string]string{
		"dana's token as subject": {"subject_token": x.danaToken, "subject_token_type": typeAT, "actor_token": agent2Token, "actor_token_type": typeAT},
		"ID token as subject":     {"subject_token": idTok, "subject_token_type": typeID, "actor_token": agent2Token, "actor_token_type": typeAT},
		"delegated as subject":    {"subject_token": delegated, "subject_token_type": typeAT, "actor_token": agent2Token, "actor_token_type": typeAT},
	} {
		if code, body := x.exchangeAs(x.agentApp, f); code == 200 {
			t.Errorf("after unlock: %s exchanged: %v", name, body)
		}
	}
	if code, body := x.refreshAs(x.offline, offline["refresh_token"].(string)); code == 200 {
		t.Errorf("after unlock: the delegation refresh token works: %v", body)
	}
	if code, body := x.refreshAs(x.helpdesk, impRT); code == 200 {
		t.Errorf("after unlock: the impersonation refresh token works: %v", body)
	}
	// New tokens work again (the lock is really lifted).
	if code, body := x.impersonate("after unlock"); code != 200 {
		t.Errorf("sanity: impersonating dana after unlock: %d %v", code, body)
	}
}

// TestRedteamLockedActorAndAdminEverywhere: the actor (sam) and an admin (olga) are locked with a
// plain store update (no RetirePrincipal); their tokens and everything derived are inactive at
// introspection, userinfo, admin API, exchange and refresh.
func TestRedteamLockedActorAndAdminEverywhere(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	adminTok := x.AdminToken(store.KindUser, x.olga.ID, x.web.Client)
	code, body := x.impersonate("t")
	imp := redOK(t, "impersonation", code, body)
	_, impRT := x.impersonateHelpdeskWithRefresh(t)
	code, body = x.exchangeAs(x.offline, map[string]string{"subject_token": imp, "subject_token_type": typeAT,
		"actor_token": x.offlineAgentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	child := redOK(t, "delegation from impersonation", code, body)
	for _, u := range []*store.User{x.sam, x.olga} {
		u.Locked = true
		if err := x.Server.Store.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	x.poll(t)
	for name, raw := range map[string]string{"sam's token": x.samToken, "impersonation": imp, "child delegation": child} {
		if x.active(t, raw) {
			t.Errorf("%s active with sam locked", name)
		}
		if code, _ := x.userinfo(t, raw); code == 200 {
			t.Errorf("%s works at userinfo with sam locked", name)
		}
	}
	if code, body := x.admin(t, adminTok, "GET", "/admin/v1/policies", nil); code == 200 {
		t.Errorf("a locked admin's token reached the admin API: %v", body)
	}
	if code, body := x.refreshAs(x.helpdesk, impRT); code == 200 {
		t.Errorf("refresh of a locked actor's session: %v", body)
	}
	if code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": imp, "subject_token_type": typeAT}); code == 200 {
		t.Errorf("down-scoping a locked actor's impersonation token: %v", body)
	}
}

// TestRedteamDeletedClientRecreatedWithSameID: `signet client delete` then a new client with the
// same ID: tokens of the old one (and derived ones) stay inactive.
func TestRedteamDeletedClientRecreatedWithSameID(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	old := x.CreateClient(store.Client{Name: "reused", GrantTypes: []string{grantTE}})
	tok := x.Token(store.KindUser, x.dana.ID, old.Client, "read")
	code, body := x.exchangeAs(old, map[string]string{"subject_token": tok, "subject_token_type": typeAT, "expires_in": "600"})
	narrowed := redOK(t, "down-scoping", code, body)
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": tok, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT})
	delegated := redOK(t, "delegation", code, body)
	if err := x.Server.Store.DeleteClient(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if err := x.Server.Sessions.RetirePrincipal(ctx, store.KindClient, old.ID, "ops", "client deleted", x.Server.Config.MaxAccessTTL); err != nil {
		t.Fatal(err)
	}
	x.poll(t)
	time.Sleep(1100 * time.Millisecond)
	again := x.CreateClient(store.Client{ID: old.ID, Name: "reused", GrantTypes: []string{grantTE}})
	x.poll(t)
	for name, raw := range map[string]string{"old client's token": tok, "down-scoped": narrowed, "delegated": delegated} {
		if x.active(t, raw) {
			t.Errorf("%s is active again after the client ID was reused", name)
		}
	}
	if fresh := x.Token(store.KindUser, x.dana.ID, again.Client, "read"); !x.active(t, fresh) {
		t.Error("sanity: the new client's token is inactive")
	}
}

// TestRedteamServiceAccountBypassesGrantAllowList: a service account authenticates at the token
// endpoint with its key file and uses grants no allow-list ever gave it: token exchange, a refresh
// token (which a client gets only when allowed the refresh_token grant), and the refresh grant.
func TestRedteamServiceAccountBypassesGrantAllowList(t *testing.T) {
	x := newRed(t)
	if err := x.Server.Policy.Put(context.Background(), exchange.Rule{Name: "agent-direct", Mode: exchange.ModeDelegation,
		Actors: exchange.Selector{ServiceAccounts: []string{"agent"}}, Subjects: exchange.Subjects{Users: []string{"*"}},
		Audiences: []string{x.api.ID}, Scopes: []string{"read"}, AllowRefresh: true}); err != nil {
		t.Fatal(err)
	}
	kf, _ := x.KeyFile(store.KindServiceAccount, x.agent.ID, "ES256", time.Time{})
	// The agent's own token, issued to itself (JWT bearer grant, no client).
	code, body := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
		"assertion": x.assertionFor(t, kf, x.agent.ID), "scope": "read"}, "", "")
	self := redOK(t, "JWT bearer", code, body)
	asAgent := func(f map[string]string) (int, map[string]any) {
		f["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
		f["client_assertion"] = x.assertionFor(t, kf, x.agent.ID)
		return x.PostForm("/oauth/v2/token", f, "", "")
	}
	code, body = asAgent(map[string]string{"grant_type": grantTE, "subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": self, "actor_token_type": typeAT, "requested_token_type": typeRT})
	if code != 400 || body["error"] != "unauthorized_client" {
		t.Errorf("a service account that no allow-list permits token exchange or refresh tokens was not refused: %d (refresh_token issued: %v)", code, body["refresh_token"] != nil)
		if code == 200 {
			// What it got: the session and the exchange.allowed audit event exist; the tokens
			// themselves fail the standing check, which looks the service account up as a client.
			t.Logf("delegated token at introspection: %v", x.info(t, body["access_token"].(string)))
			code, body := asAgent(map[string]string{"grant_type": "refresh_token", "refresh_token": body["refresh_token"].(string)})
			t.Logf("refresh_token grant as the service account: %d %v", code, body)
		}
	}
	// Down-scoping its own token through the token-exchange grant works and yields a live token.
	code, body = asAgent(map[string]string{"grant_type": grantTE, "subject_token": self, "subject_token_type": typeAT, "expires_in": "60"})
	if code == 200 && x.active(t, body["access_token"].(string)) {
		t.Errorf("a service account used grant_type token-exchange, which no allow-list gives it, and got a live token")
	}
}

// ---------------------------------------------------------------------------------------------
// Guarantee 8: refusals disclose nothing.

// TestRedteamLockedStateIsToldOnlyToActorsTheRuleLetsReachTheUser: a locked user no rule lets this
// actor reach is refused exactly like an unknown ID. An actor a rule does let reach the user is told
// the user is locked: for a user the actor may act as, an unlocked account answers 200, so "locked"
// discloses nothing more than the rule already grants, and saves the staff member a wrong guess
// about the rule.
func TestRedteamLockedStateIsToldOnlyToActorsTheRuleLetsReachTheUser(t *testing.T) {
	x := newRed(t)
	probe := func(id string) (int, string, string) {
		code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": id, "subject_token_type": typeUser,
			"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "probe"})
		d, _ := body["error_description"].(string)
		e, _ := body["error"].(string)
		return code, e, strings.ReplaceAll(d, id, "<id>")
	}
	unreachable := x.CreateUser("locked-staff", "support")
	unreachable.Locked = true
	x.Server.Store.UpdateUser(context.Background(), unreachable)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeUser, Key: unreachable.ID})
	c1, e1, d1 := probe("u-" + strings.Repeat("0", 12))
	c2, e2, d2 := probe(unreachable.ID)
	if c1 != c2 || e1 != e2 || d1 != d2 {
		t.Errorf("unknown ID → %d %s %q\nlocked user no rule reaches → %d %s %q", c1, e1, d1, c2, e2, d2)
	}
	if _, e, d := probe(x.locked.ID); e != "invalid_grant" || !strings.Contains(d, "is locked") {
		t.Errorf("a locked customer sam may impersonate: %s %q", e, d)
	}
}

// TestRedteamRefusalsSameForUnknownAndUnmatchedUsers: unknown IDs, users holding a role the actor
// lacks and users no rule names are refused identically.
func TestRedteamRefusalsSameForUnknownAndUnmatchedUsers(t *testing.T) {
	x := newRed(t)
	nobody := x.CreateUser("nobody") // no role: no rule names them
	probe := func(id string) string {
		code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": id, "subject_token_type": typeUser,
			"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "probe"})
		d, _ := body["error_description"].(string)
		return strings.ReplaceAll(string(rune('0'+code/100))+" "+body["error"].(string)+" "+d, id, "<id>")
	}
	want := probe("u-" + strings.Repeat("0", 12))
	for name, id := range map[string]string{"admin-role customer": x.olga.ID, "user no rule names": nobody.ID} {
		if got := probe(id); got != want {
			t.Errorf("%s refused differently:\n%s\nvs unknown\n%s", name, got, want)
		}
	}
}

// TestRedteamIntrospectionBearerRefusalsAlike: unauthenticated Bearer tokens at introspection (a
// user's, a revoked service account's, an exchanged one, garbage, a refresh token) get one answer.
func TestRedteamIntrospectionBearerRefusalsAlike(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	intro := x.CreateServiceAccount("intro", "introspector")
	revoked := x.Token(store.KindServiceAccount, intro.ID, x.agentApp.Client, "read")
	x.Server.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeTokenID, Value: mustJTI(t, x.xenv, revoked), At: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT})
	delegated := redOK(t, "delegation", code, body)
	rt := x.delegateOffline(t)["refresh_token"].(string)
	var first string
	for name, raw := range map[string]string{"user's token": x.danaToken, "revoked service account token": revoked, "delegated": delegated,
		"garbage": "x.y.z", "refresh token": rt} {
		resp := x.Do("/oauth/v2/introspect", map[string]string{"token": x.danaToken}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+raw) })
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := resp.Status + " " + resp.Header.Get("WWW-Authenticate") + " " + string(b)
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("%s answered differently: %s vs %s", name, got, first)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Token-type confusion, audience duplication, replay, public clients.

// TestRedteamTokenTypeConfusion sends each kind of token where another is expected.
func TestRedteamTokenTypeConfusion(t *testing.T) {
	x := newRed(t)
	adminTok := x.AdminToken(store.KindUser, x.olga.ID, x.web.Client)
	off := x.delegateOffline(t)
	rt, at := off["refresh_token"].(string), off["access_token"].(string)
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "requested_token_type": typeID})
	idTok := redOK(t, "ID token", code, body)
	code, body = x.exchangeAs(x.web, map[string]string{"subject_token": adminTok, "subject_token_type": typeAT, "requested_token_type": typeID})
	adminID := redOK(t, "admin ID token", code, body)
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")

	exchanges := map[string]struct {
		c    testenv.Client
		form map[string]string
	}{
		"refresh token as subject_token":          {x.offline, map[string]string{"subject_token": rt, "subject_token_type": typeAT}},
		"refresh token as subject_token (jwt)":    {x.offline, map[string]string{"subject_token": rt, "subject_token_type": typeJWT}},
		"refresh token as subject_token (id)":     {x.offline, map[string]string{"subject_token": rt, "subject_token_type": typeID, "actor_token": x.offlineAgentToken, "actor_token_type": typeAT}},
		"refresh token as actor_token":            {x.offline, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "actor_token": rt, "actor_token_type": typeAT}},
		"ID token as subject (access_token)":      {x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeAT, "actor_token": agent2Token, "actor_token_type": typeAT}},
		"ID token as subject (jwt)":               {x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeJWT, "actor_token": agent2Token, "actor_token_type": typeAT}},
		"ID token down-scoped alone":              {x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeAT}},
		"ID token as actor (jwt)":                 {x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "actor_token": idTok, "actor_token_type": typeJWT}},
		"user ID as access_token":                 {x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeAT, "actor_token": x.samToken, "actor_token_type": typeAT, "reason": "t"}},
		"access token as user ID":                 {x.spa, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeUser, "actor_token": x.samToken, "actor_token_type": typeAT, "reason": "t"}},
		"refresh token as requested of downscope": {x.offline, map[string]string{"subject_token": at, "subject_token_type": typeAT, "requested_token_type": typeRT}},
	}
	for name, c := range exchanges {
		if code, body := x.exchangeAs(c.c, c.form); code == 200 {
			t.Errorf("%s: accepted: %v", name, body)
		}
	}
	for name, raw := range map[string]string{"access token": at, "ID token": idTok} {
		if code, body := x.refreshAs(x.offline, raw); code == 200 {
			t.Errorf("%s as refresh_token: accepted: %v", name, body)
		}
	}
	for name, raw := range map[string]string{"refresh token": rt, "ID token": idTok, "admin ID token": adminID} {
		if x.active(t, raw) {
			t.Errorf("%s introspects active", name)
		}
		if code, _ := x.userinfo(t, raw); code == 200 {
			t.Errorf("%s works at userinfo", name)
		}
		if code, _ := x.admin(t, raw, "GET", "/admin/v1/policies", nil); code == 200 {
			t.Errorf("%s works at the admin API", name)
		}
	}
}

// TestRedteamAudienceDuplication: repeating audience/resource values cannot add an audience or
// smuggle one past the rule or the subject token.
func TestRedteamAudienceDuplication(t *testing.T) {
	x := newRed(t)
	imp := func(aud ...[2]string) (int, map[string]any) {
		v := url.Values{"grant_type": {grantTE}, "subject_token": {x.dana.ID}, "subject_token_type": {typeUser},
			"actor_token": {x.samToken}, "actor_token_type": {typeAT}, "reason": {"t"}}
		for _, a := range aud {
			v.Add(a[0], a[1])
		}
		return x.postValues(t, x.spa, v)
	}
	code, body := imp([2]string{"audience", x.api.ID}, [2]string{"audience", x.api.ID}, [2]string{"resource", x.api.ID})
	tok := redOK(t, "duplicated audience", code, body)
	for _, a := range x.info(t, tok)["aud"].([]any) {
		if a != x.api.ID {
			t.Errorf("audience %v beyond the rule", a)
		}
	}
	for name, auds := range map[string][][2]string{
		"duplicate then foreign":     {{"audience", x.api.ID}, {"audience", x.api.ID}, {"resource", x.backend.ID}},
		"admin audience as resource": {{"audience", x.api.ID}, {"resource", x.adminAud}},
		"empty audience":             {{"audience", x.api.ID}, {"audience", ""}},
	} {
		if code, body := imp(auds...); code == 200 {
			t.Errorf("%s: allowed, aud %v", name, x.info(t, body["access_token"].(string))["aud"])
		}
	}
	// Down-scoping: dana's web token has audience [web]; duplicates of it cannot add api.
	v := url.Values{"grant_type": {grantTE}, "subject_token": {x.danaToken}, "subject_token_type": {typeAT}}
	v.Add("audience", x.web.ID)
	v.Add("audience", x.web.ID)
	v.Add("resource", x.api.ID)
	if code, body := x.postValues(t, x.web, v); code == 200 {
		t.Errorf("down-scoping added an audience: %v", x.info(t, body["access_token"].(string))["aud"])
	}
}

// TestRedteamPublicClients: a public SPA cannot use another client's actor token even where the
// rule lists that client in actor_token_clients, cannot refresh a confidential client's refresh
// token, and cannot down-scope someone else's token.
func TestRedteamPublicClients(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	pubRefresh := x.CreateClient(store.Client{Name: "pub-refresh", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{grantTE, "refresh_token"}})
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "spa-any-actor", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
		Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{pubRefresh.ID}, ActorTokenClients: []string{x.backend.ID, x.spa.ID},
		Audiences: []string{x.api.ID}, Scopes: []string{"read"}, AllowRefresh: true}); err != nil {
		t.Fatal(err)
	}
	samBackend := x.Token(store.KindUser, x.sam.ID, x.backend.Client, "read")
	if code, body := x.exchangeAs(pubRefresh, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": samBackend, "actor_token_type": typeAT}); code == 200 {
		t.Errorf("public client used another client's actor token via actor_token_clients: %v", body)
	}
	rt := x.delegateOffline(t)["refresh_token"].(string)
	if code, body := x.refreshAs(pubRefresh, rt); code == 200 {
		t.Errorf("public client refreshed a confidential client's refresh token: %v", body)
	}
	if code, body := x.exchangeAs(pubRefresh, map[string]string{"subject_token": x.samToken, "subject_token_type": typeAT}); code == 200 {
		t.Errorf("public client down-scoped another client's token: %v", body)
	}
	// Its own refresh token works only for itself.
	samPub := x.Token(store.KindUser, x.sam.ID, pubRefresh.Client, "read")
	code, body := x.exchangeAs(pubRefresh, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": samPub, "actor_token_type": typeAT, "requested_token_type": typeRT})
	redOK(t, "public impersonation with refresh", code, body)
	if code, body := x.refreshAs(x.spa, body["refresh_token"].(string)); code == 200 {
		t.Errorf("another public client used the refresh token: %v", body)
	}
}

// TestRedteamRefreshReplayAfterTheft: an attacker (same client) replays a rotated refresh token
// after the race window: the whole grant dies, including what the attacker got earlier.
func TestRedteamRefreshReplayAfterTheft(t *testing.T) {
	x := newRed(t)
	rt := x.delegateOffline(t)["refresh_token"].(string)
	code, stolen := x.refreshAs(x.offline, rt) // the attacker uses the stolen refresh token first
	attackerAT := redOK(t, "attacker's refresh", code, stolen)
	x.Server.OAuth.Now = func() time.Time { return time.Now().Add(oauth.RefreshRaceWindow + time.Second) }
	defer func() { x.Server.OAuth.Now = time.Now }()
	if code, body := x.refreshAs(x.offline, rt); code == 200 { // the victim, later
		t.Fatalf("replayed refresh token accepted: %v", body)
	}
	x.Server.OAuth.Now = time.Now
	if x.active(t, attackerAT) {
		t.Error("the attacker's access token survived reuse detection")
	}
	if code, body := x.refreshAs(x.offline, stolen["refresh_token"].(string)); code == 200 {
		t.Errorf("the attacker's refresh token survived reuse detection: %v", body)
	}
}

// ---------------------------------------------------------------------------------------------
// Guarantee 9: no exp leeway on the issuer's own tokens; the kill switch at once.

// TestRedteamNoExpLeewayOnOwnTokens: JWT and opaque tokens (including an admin token) are dead
// the second they expire at introspection, userinfo, exchange and the admin API, although the
// server tolerates a minute of clock skew elsewhere.
func TestRedteamNoExpLeewayOnOwnTokens(t *testing.T) {
	x := newRed(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	exp := now.Add(2 * time.Second)
	mk := func(format string, aud ...string) string {
		raw, err := x.Server.Tokens.Issue(ctx, &tokens.Access{Subject: x.olga.ID, SubjectKind: store.KindUser, ClientID: x.web.ID,
			Audience: append([]string{x.web.ID}, aud...), Scope: []string{"read"}, IssuedAt: now, ExpiresAt: exp}, format, "ES256")
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	jwtTok, opaqueTok, adminTok := mk(store.FormatJWT), mk(store.FormatOpaque), mk(store.FormatJWT, x.adminAud)
	if !x.active(t, jwtTok) || !x.active(t, opaqueTok) {
		t.Fatal("sanity: fresh tokens inactive")
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	for name, raw := range map[string]string{"jwt": jwtTok, "opaque": opaqueTok} {
		if x.active(t, raw) {
			t.Errorf("%s token active after exp", name)
		}
		if code, _ := x.userinfo(t, raw); code == 200 {
			t.Errorf("%s token works at userinfo after exp", name)
		}
		if code, body := x.exchangeAs(x.web, map[string]string{"subject_token": raw, "subject_token_type": typeAT}); code == 200 {
			t.Errorf("%s token exchanged after exp: %v", name, body)
		}
	}
	if code, _ := x.admin(t, adminTok, "GET", "/admin/v1/policies", nil); code == 200 {
		t.Error("admin token works after exp")
	}
}

// TestRedteamKillSwitchViaAdminAPIAtOnce: flipping the kill switch through the admin API stops
// impersonation tokens, their delegated children, refreshes and new impersonations on this server
// at once (no change-feed poll); enabling again revives nothing.
func TestRedteamKillSwitchViaAdminAPIAtOnce(t *testing.T) {
	x := newRed(t)
	adminTok := x.AdminToken(store.KindUser, x.olga.ID, x.web.Client)
	code, body := x.impersonate("t")
	imp := redOK(t, "impersonation", code, body)
	impOpaque, impRT := x.impersonateHelpdeskWithRefresh(t)
	code, body = x.exchangeAs(x.offline, map[string]string{"subject_token": imp, "subject_token_type": typeAT,
		"actor_token": x.offlineAgentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	child := redOK(t, "delegation from impersonation", code, body)
	if code, body := x.admin(t, adminTok, "POST", "/admin/v1/impersonation/disable", map[string]any{"reason": "incident"}); code != 200 {
		t.Fatalf("disable: %d %v", code, body)
	}
	check := func(when string) {
		for name, raw := range map[string]string{"impersonation": imp, "opaque impersonation": impOpaque, "delegated child": child} {
			if x.active(t, raw) {
				t.Errorf("%s: %s active", when, name)
			}
		}
		if code, body := x.refreshAs(x.helpdesk, impRT); code == 200 {
			t.Errorf("%s: impersonation refresh works: %v", when, body)
		}
	}
	check("kill switch on")
	if code, body := x.impersonate("t2"); code == 200 {
		t.Errorf("new impersonation while the kill switch is on: %v", body)
	}
	if code, body := x.admin(t, adminTok, "POST", "/admin/v1/impersonation/enable", map[string]any{"reason": "resolved"}); code != 200 {
		t.Fatalf("enable: %d %v", code, body)
	}
	check("kill switch off again")
}
