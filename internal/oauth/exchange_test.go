package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
	"github.com/signet-id/signet/internal/tokens"
)

const (
	grantTE   = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAT    = "urn:ietf:params:oauth:token-type:access_token"
	typeJWT   = "urn:ietf:params:oauth:token-type:jwt"
	typeUser  = "urn:zitadel:params:oauth:token-type:user_id"
	typeUser2 = "urn:signet:params:oauth:token-type:user_id"
)

// xenv is a provider with the people, clients and rules of SPEC §1 S2–S4.
type xenv struct {
	*testenv.Env
	api, spa, spa2, backend, agentApp, web testenv.Client
	gateway                                testenv.Client // holds introspect-any: sees every token
	sam, dana, olga, locked                *store.User
	agent, agent2, stranger                *store.ServiceAccount
	samToken, danaToken, agentToken        string
}

func newXEnv(t testing.TB) *xenv { return newXEnvOn(t, "") }

// newXEnvOn is newXEnv on backend ("sqlite" or "postgres"; empty: SQLite).
func newXEnvOn(t testing.TB, backend string) *xenv {
	env := testenv.Start(t, testenv.Options{DB: dsnFor(t, backend)})
	ctx := context.Background()
	env.Server.Store.PutRole(ctx, &store.Role{Name: "customer"})
	x := &xenv{Env: env}
	x.api = env.CreateClient(store.Client{Name: "orders-api"})
	x.spa = env.CreateClient(store.Client{Name: "admin-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{grantTE}})
	x.spa2 = env.CreateClient(store.Client{Name: "other-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{grantTE}})
	x.backend = env.CreateClient(store.Client{Name: "admin-backend", GrantTypes: []string{grantTE}, AccessTokenFormat: store.FormatOpaque})
	x.agentApp = env.CreateClient(store.Client{Name: "agent-app", GrantTypes: []string{grantTE, "client_credentials"}})
	x.web = env.CreateClient(store.Client{Name: "web", GrantTypes: []string{grantTE}})
	x.gateway = env.CreateClient(store.Client{Name: "gateway", Roles: []string{"introspect-any"}})
	x.sam = env.CreateUser("sam", "support")
	x.dana = env.CreateUser("dana", "customer")
	x.olga = env.CreateUser("olga", "customer", "admin")
	x.locked = env.CreateUser("lee", "customer")
	x.locked.Locked = true
	env.Server.Store.UpdateUser(ctx, x.locked)
	x.agent = env.CreateServiceAccount("agent")
	x.agent2 = env.CreateServiceAccount("agent2")
	x.stranger = env.CreateServiceAccount("stranger")
	for _, r := range []exchange.Rule{
		{Name: "support-impersonates-customers", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
			Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{x.spa.ID, x.backend.ID},
			Audiences: []string{x.api.ID}, Scopes: []string{"read", "write"}, MaxTTL: exchange.Duration(10 * time.Minute), RequireReason: true},
		{Name: "agents-act-for-users", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent", "agent2"}},
			Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{x.agentApp.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}},
	} {
		if err := env.Server.Policy.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	x.samToken = env.Token(store.KindUser, x.sam.ID, x.spa.Client, "read", "write", "admin")
	x.danaToken = env.Token(store.KindUser, x.dana.ID, x.web.Client, "read", "write")
	x.agentToken = env.Token(store.KindServiceAccount, x.agent.ID, x.agentApp.Client, "read")
	return x
}

// exchangeAs posts a token-exchange request as client c (public clients send only client_id).
func (x *xenv) exchangeAs(c testenv.Client, form map[string]string) (int, map[string]any) {
	form["grant_type"] = grantTE
	if c.AuthMethod == store.AuthNone {
		form["client_id"] = c.ID
		return x.PostForm("/oauth/v2/token", form, "", "")
	}
	return x.PostForm("/oauth/v2/token", form, c.ID, c.Secret)
}

func (x *xenv) introspect(t *testing.T, raw string) map[string]any {
	t.Helper()
	_, body := x.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, x.api.ID, x.api.Secret)
	return body
}

func (x *xenv) impersonate(reason string) (int, map[string]any) {
	return x.exchangeAs(x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": reason})
}

func (x *xenv) audits(t *testing.T, typ string) []store.AuditEvent {
	t.Helper()
	ev, err := x.Server.Store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestImpersonationFromAnAdminSPA is S2: a public admin SPA exchanges the staff member's token and
// a customer's user ID for a short-lived, scoped-down token that names the staff member in act.
func TestImpersonationFromAnAdminSPA(t *testing.T) { onBackends(t, testImpersonationFromAnAdminSPA) }

func testImpersonationFromAnAdminSPA(t *testing.T, backend string) {
	x := newXEnvOn(t, backend)
	code, body := x.impersonate("ticket 4812")
	if code != 200 {
		t.Fatalf("impersonation refused: %v", body)
	}
	if body["issued_token_type"] != typeAT || body["token_type"] != "Bearer" || body["scope"] != "read write" {
		t.Fatalf("response %v", body)
	}
	if exp := body["expires_in"].(float64); exp > 600 || exp < 590 {
		t.Fatalf("expires_in %v: the rule caps impersonation at 10 minutes", exp)
	}
	info := x.introspect(t, body["access_token"].(string))
	act, _ := info["act"].(map[string]any)
	xch, _ := info["signet_exchange"].(map[string]any)
	if info["active"] != true || info["sub"] != x.dana.ID || act["sub"] != x.sam.ID || act["client_id"] != x.spa.ID || xch["kind"] != "impersonation" {
		t.Fatalf("introspection %v", info)
	}
	ev := x.audits(t, audit.TypeExchangeAllowed)
	if len(ev) != 1 || ev[0].Actor != x.sam.ID || ev[0].Subject != x.dana.ID || !strings.Contains(string(ev[0].Details), `"reason":"ticket 4812"`) ||
		!strings.Contains(string(ev[0].Details), xch["session"].(string)) || !strings.Contains(string(ev[0].Details), `"source_ip"`) {
		t.Fatalf("audit %+v", ev)
	}
	// The same through the signet spelling of the user_id type, and as an ID token.
	code, body = x.exchangeAs(x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser2,
		"actor_token": x.samToken, "actor_token_type": typeAT, "reason": "ticket 4813", "requested_token_type": "urn:ietf:params:oauth:token-type:id_token"})
	if code != 200 || body["token_type"] != "N_A" || body["issued_token_type"] != "urn:ietf:params:oauth:token-type:id_token" {
		t.Fatalf("id_token: %d %v", code, body)
	}
	if info := x.introspect(t, body["access_token"].(string)); info["active"] != false {
		t.Fatal("an ID token must not be accepted as an access token")
	}
}

// TestDelegationChainsNest is S3/S4: an agent acts for a user, another agent acts on that token,
// and the whole chain is in act.
func TestDelegationChainsNest(t *testing.T) { onBackends(t, testDelegationChainsNest) }

func testDelegationChainsNest(t *testing.T, backend string) {
	x := newXEnvOn(t, backend)
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "resource": x.api.ID})
	if code != 200 || body["scope"] != "read" {
		t.Fatalf("delegation: %d %v", code, body)
	}
	first := body["access_token"].(string)
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	code, body = x.exchangeAs(x.agentApp, map[string]string{"subject_token": first, "subject_token_type": typeJWT,
		"actor_token": agent2Token, "actor_token_type": typeAT, "expires_in": "60"})
	if code != 200 {
		t.Fatalf("second delegation: %d %v", code, body)
	}
	info := x.introspect(t, body["access_token"].(string))
	act, _ := info["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if info["sub"] != x.dana.ID || act["sub"] != x.agent2.ID || inner["sub"] != x.agent.ID || info["exp"].(float64)-info["iat"].(float64) > 60 {
		t.Fatalf("chain: %v", info)
	}
}

// TestZitadelTokenExchangeClient performs delegation with zitadel/oidc's tokenexchange package.
func TestZitadelTokenExchangeClient(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	te, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, x.URL, x.agentApp.ID, x.agentApp.Secret)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tokenexchange.ExchangeToken(ctx, te, x.danaToken, zoidc.AccessTokenType, x.agentToken, zoidc.AccessTokenType,
		nil, []string{x.api.ID}, []string{"read"}, zoidc.AccessTokenType)
	if err != nil {
		t.Fatalf("zitadel tokenexchange: %v", err)
	}
	if resp.IssuedTokenType != zoidc.AccessTokenType || resp.Scopes[0] != "read" {
		t.Fatalf("%+v", resp)
	}
	_, err = tokenexchange.ExchangeToken(ctx, te, x.danaToken, zoidc.AccessTokenType, x.agentToken, zoidc.AccessTokenType,
		nil, []string{x.api.ID}, []string{"delete"}, zoidc.AccessTokenType)
	if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Fatalf("scope widening through zitadel's client: %v", err)
	}

	// Impersonation by user ID from a confidential admin backend (zitadel's client sends no reason,
	// so the rule for this backend does not require one).
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "backend-impersonates", Mode: exchange.ModeImpersonation,
		Actors: exchange.Selector{Roles: []string{"support"}}, Subjects: exchange.Subjects{Roles: []string{"customer"}},
		Clients: []string{x.backend.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	backendTE, err := tokenexchange.NewTokenExchangerClientCredentials(ctx, x.URL, x.backend.ID, x.backend.Secret)
	if err != nil {
		t.Fatal(err)
	}
	samForBackend := x.Token(store.KindUser, x.sam.ID, x.backend.Client, "read")
	resp, err = tokenexchange.ExchangeToken(ctx, backendTE, x.dana.ID, zoidc.TokenType(typeUser), samForBackend, zoidc.AccessTokenType,
		nil, []string{x.api.ID}, nil, zoidc.AccessTokenType)
	if err != nil {
		t.Fatalf("impersonation through zitadel's client: %v", err)
	}
	info := x.introspect(t, resp.AccessToken)
	if info["sub"] != x.dana.ID || info["act"].(map[string]any)["sub"] != x.sam.ID || info["scope"] != "read" {
		t.Fatalf("impersonation token: %v", info)
	}
}

// TestKillSwitchAndSessionEnd: an operator ending a session or flipping the kill switch through the
// admin API makes derived tokens inactive at once, including tokens exchanged again from them; each
// action is audited and recorded on the sessions it ended.
func TestKillSwitchAndSessionEnd(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		x := newXEnvOn(t, backend)
		ctx := context.Background()
		admin := x.AdminToken(store.KindUser, x.olga.ID, x.spa.Client)
		operator := "user:" + x.olga.ID
		_, body := x.impersonate("ticket 1")
		tok1 := body["access_token"].(string)
		// Exchanged again by the SPA (down-scoping): same session.
		_, again := x.exchangeAs(x.spa, map[string]string{"subject_token": tok1, "subject_token_type": typeAT, "scope": "read"})
		tok2, _ := again["access_token"].(string)
		if tok2 == "" || x.introspect(t, tok2)["active"] != true {
			t.Fatalf("down-scoping an impersonation token: %v", again)
		}
		session := x.introspect(t, tok1)["signet_exchange"].(map[string]any)["session"].(string)
		if code, ended := x.Bearer("POST", "/admin/v1/impersonations/"+session+"/end", admin, map[string]any{"reason": "ticket closed"}); code != 200 || ended["ended"] != float64(1) {
			t.Fatalf("ending the session through the admin API: %d %v", code, ended)
		}
		for _, raw := range []string{tok1, tok2} {
			if got := x.introspect(t, raw); got["active"] != false {
				t.Fatalf("a token of an ended session is still active: %v", got)
			}
		}
		rec, err := x.Server.Store.GetExchangeSession(ctx, session)
		if err != nil || rec.EndedAt.IsZero() || rec.EndedBy != operator {
			t.Fatalf("the session record must say when and by whom it ended: %+v %v", rec, err)
		}
		wantEvent(t, x.audits(t, audit.TypeSessionEnded), operator, map[string]any{"session": session, "reason": "ticket closed", "kind": "impersonation", "session_actor": x.sam.ID})

		_, body = x.impersonate("ticket 2")
		tok3 := body["access_token"].(string)
		session3 := x.introspect(t, tok3)["signet_exchange"].(map[string]any)["session"].(string)
		if code, off := x.Bearer("POST", "/admin/v1/impersonation/disable", admin, map[string]any{"reason": "incident"}); code != 200 || off["impersonation_disabled"] != true {
			t.Fatalf("the kill switch through the admin API: %d %v", code, off)
		}
		if x.introspect(t, tok3)["active"] != false {
			t.Fatal("the kill switch left an impersonation token active")
		}
		if rec, err := x.Server.Store.GetExchangeSession(ctx, session3); err != nil || rec.EndedAt.IsZero() || rec.EndedBy != operator {
			t.Fatalf("the kill switch must end the open impersonation sessions: %+v %v", rec, err)
		}
		wantEvent(t, x.audits(t, audit.TypeImpersonationOff), operator, map[string]any{"reason": "incident"})
		code, body := x.impersonate("ticket 3")
		if code != 403 || body["error"] != "access_denied" || !strings.Contains(body["error_description"].(string), "kill switch") {
			t.Fatalf("impersonation while disabled: %d %v", code, body)
		}
	})
}

// wantEvent asserts that events holds exactly one event, by actor, whose details include want.
func wantEvent(t *testing.T, events []store.AuditEvent, actor string, want map[string]any) {
	t.Helper()
	if len(events) != 1 {
		t.Fatalf("want one event, got %d: %+v", len(events), events)
	}
	var details map[string]any
	if err := json.Unmarshal(events[0].Details, &details); err != nil {
		t.Fatal(err)
	}
	if events[0].Actor != actor {
		t.Fatalf("event %s by %q, want %q", events[0].Type, events[0].Actor, actor)
	}
	for k, v := range want {
		if details[k] != v {
			t.Fatalf("event %s: %s is %v, want %v (details %v)", events[0].Type, k, details[k], v, details)
		}
	}
}

// failingAudit is a store whose audit writes fail (a full disk, a lost connection).
type failingAudit struct{ store.Store }

func (failingAudit) AppendAudit(context.Context, ...*store.AuditEvent) error {
	return errors.New("disk full")
}

func (failingAudit) OpenExchangeSession(context.Context, *store.ExchangeSession, *store.AuditEvent) error {
	return errors.New("disk full")
}

func (failingAudit) RotateRefreshToken(_ context.Context, _ []byte, _ *store.Token, _ time.Time, event *store.AuditEvent) error {
	if event != nil {
		return errors.New("disk full")
	}
	return errors.New("a refresh must be audited with its rotation")
}

// TestAuditFailureIssuesNoToken: when the audit write fails, the exchange fails and no token or
// session exists.
func TestAuditFailureIssuesNoToken(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		x := newXEnvOn(t, backend)
		x.Server.OAuth.Audit = audit.New(failingAudit{x.Server.Store})
		x.Server.OAuth.Exchange.Store = failingAudit{x.Server.Store}
		code, body := x.impersonate("ticket 9")
		if code != 500 || body["error"] != "server_error" || body["access_token"] != nil {
			t.Fatalf("want server_error and no token, got %d %v", code, body)
		}
		sessions, err := x.Server.Store.ListExchangeSessions(context.Background(), time.Time{})
		if err != nil || len(sessions) != 0 {
			t.Fatalf("a session was opened without an audit event: %v %v", sessions, err)
		}
		if ev := x.audits(t, audit.TypeExchangeAllowed); len(ev) != 0 {
			t.Fatalf("an exchange that failed was audited as allowed: %+v", ev)
		}
	})
}

// forged signs a token with a key Signet does not know.
func forged(t *testing.T, claims map[string]any) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "attacker"))
	b, _ := json.Marshal(claims)
	jws, _ := s.Sign(b)
	out, _ := jws.CompactSerialize()
	return out
}

// TestEscalationCorpus replays attacks; every one is refused with the right code and audited.
func TestEscalationCorpus(t *testing.T) { onBackends(t, testEscalationCorpus) }

func testEscalationCorpus(t *testing.T, backend string) {
	x := newXEnvOn(t, backend)
	ctx := context.Background()
	imp := func(mod func(f map[string]string)) map[string]string {
		f := map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser, "actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "ticket"}
		mod(f)
		return f
	}
	del := func(mod func(f map[string]string)) map[string]string {
		f := map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID}
		mod(f)
		return f
	}
	_, ok := x.impersonate("ticket 0")
	impToken := ok["access_token"].(string)
	revoked := x.Token(store.KindUser, x.sam.ID, x.spa.Client, "read")
	x.Server.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeTokenID, Value: mustJTI(t, x, revoked), At: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	expired := expiredToken(t, x)
	revokedSubject := x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read")
	if err := x.Server.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeTokenID, Value: mustJTI(t, x, revokedSubject), At: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	expiredSubject, err := x.Server.Tokens.Issue(ctx, &tokens.Access{Subject: x.dana.ID, SubjectKind: store.KindUser, ClientID: x.agentApp.ID,
		Audience: []string{x.agentApp.ID}, Scope: []string{"read"}, IssuedAt: past, ExpiresAt: past.Add(time.Minute)}, store.FormatJWT, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	samForBackend := x.Token(store.KindUser, x.sam.ID, x.backend.Client, "read", "write")
	danaAsActor := x.Token(store.KindUser, x.dana.ID, x.spa.Client, "read")
	opaqueDana := x.Token(store.KindUser, x.dana.ID, x.backend.Client, "read")
	strangerToken := x.Token(store.KindServiceAccount, x.stranger.ID, x.agentApp.Client, "read")
	forgedAct := forged(t, map[string]any{"iss": x.URL, "sub": x.dana.ID, "aud": []string{x.api.ID}, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "f", "client_id": x.agentApp.ID, "act": map[string]any{"sub": x.agent.ID}})
	foreign := forged(t, map[string]any{"iss": "https://evil.example", "sub": x.dana.ID, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "g"})

	beaToken := x.Token(store.KindUser, x.CreateUser("bea", "support").ID, x.spa.Client, "read")
	agentAtWeb := x.Token(store.KindServiceAccount, x.agent.ID, x.web.Client, "read")
	danaAtApp := x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read")
	idForWeb := mustIDToken(t, x, x.dana.ID, x.web.ID)
	idForApp := mustIDToken(t, x, x.dana.ID, x.agentApp.ID)
	lockedToken := x.Token(store.KindUser, x.CreateUser("lou", "customer").ID, x.agentApp.Client, "read")
	lockUser(t, x, "lou")
	off := x.CreateServiceAccount("retired-agent")
	offToken := x.Token(store.KindServiceAccount, off.ID, x.agentApp.Client, "read")
	off.Disabled = true
	x.Server.Store.UpdateServiceAccount(ctx, off)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeServiceAccount, Key: off.ID})
	saSubject := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	var eleven []string
	for i := range 11 {
		eleven = append(eleven, fmt.Sprintf("aud-%d", i))
	}

	corpus := []struct {
		name   string
		client testenv.Client
		form   map[string]string
		code   string
		frag   string // in the description: the row is refused for its own reason
	}{
		{"scope widening", x.spa, imp(func(f map[string]string) { f["scope"] = "read admin" }), "invalid_scope", `scope "admin" exceeds`},
		{"audience swap", x.spa, imp(func(f map[string]string) { f["audience"] = x.backend.ID }), "invalid_target", "is not allowed by rule"},
		{"resource swap", x.spa, imp(func(f map[string]string) { delete(f, "audience"); f["resource"] = "https://hr.example" }), "invalid_target", `"https://hr.example" is not allowed by rule`},
		{"admin API as audience", x.spa, imp(func(f map[string]string) { f["audience"] = oauth.AdminAudience(x.URL) }), "invalid_target", "is not allowed by rule"},
		{"eleven audiences", x.spa, imp(func(f map[string]string) { f["audience"] = strings.Join(eleven, "\x00") }), "invalid_target", "send at most 10 distinct audience"},
		{"actor and subject swapped", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.sam.ID; f["actor_token"] = danaAsActor }), "unauthorized_client", "is not among its actors"},
		{"self-impersonation", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.sam.ID }), "invalid_request", "the actor and the subject are the same"},
		{"revoked actor token", x.spa, imp(func(f map[string]string) { f["actor_token"] = revoked }), "invalid_grant", "actor_token was revoked"},
		{"expired actor token", x.spa, imp(func(f map[string]string) { f["actor_token"] = expired }), "invalid_grant", "actor_token has expired"},
		{"revoked subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = revokedSubject }), "invalid_grant", "subject_token was revoked"},
		{"expired subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = expiredSubject }), "invalid_grant", "subject_token has expired"},
		{"disabled service account's token as actor", x.agentApp, del(func(f map[string]string) { f["actor_token"] = offToken; f["subject_token"] = danaAtApp }), "invalid_grant", "actor_token is not an active access token"},
		{"forged act in a subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = forgedAct }), "invalid_grant", "subject_token is not an active access token"},
		{"foreign issuer subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = foreign }), "invalid_grant", "subject_token is not an active access token"},
		{"malformed subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = "not-a-token" }), "invalid_grant", "subject_token is not an active access token"},
		{"locked user's token as subject", x.agentApp, del(func(f map[string]string) { f["subject_token"] = lockedToken }), "invalid_grant", "subject_token is not an active access token"},
		{"refresh token as subject_token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = "sgn_rt_" + strings.Repeat("A", 43) }), "invalid_grant", "subject_token is not an active access token"},
		{"ID token sent as an access token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = idForApp }), "invalid_grant", "subject_token is not an active access token"},
		{"access token sent as an ID token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = danaAtApp; f["subject_token_type"] = typeID }), "invalid_request", "is not an ID token (typ JWT)"},
		{"another client's ID token as subject", x.agentApp, del(func(f map[string]string) { f["subject_token"] = idForWeb; f["subject_token_type"] = typeID }), "invalid_grant", "an ID token for another client"},
		{"ID token asking beyond its origin's scope", x.agentApp, del(func(f map[string]string) {
			f["subject_token"], f["subject_token_type"], f["scope"] = idForApp, typeID, "read write"
		}), "invalid_scope", `scope "write" exceeds`},
		{"a service account as the subject of a delegation", x.agentApp, del(func(f map[string]string) { f["subject_token"] = saSubject }), "invalid_request", "must be a user"},
		{"user-id enumeration", x.spa, imp(func(f map[string]string) { f["subject_token"] = "u-does-not-exist" }), "unauthorized_client", "user u-does-not-exist is not among its subjects"}, // and TestUnknownUserIDsReadLikeUnnamedUsers
		{"impersonating an admin", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.olga.ID }), "unauthorized_client", "is not among its subjects"},
		{"impersonating a locked user", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.locked.ID }), "invalid_grant", "is locked"},
		{"no reason", x.spa, imp(func(f map[string]string) { delete(f, "reason") }), "invalid_request", "requires a reason"},
		{"reason too long", x.spa, imp(func(f map[string]string) { f["reason"] = strings.Repeat("r", 501) }), "invalid_request", "reason is longer than 500"},
		{"expires_in not a number", x.spa, imp(func(f map[string]string) { f["expires_in"] = "soon" }), "invalid_request", "expires_in must be a positive number"},
		{"impersonation token as actor (chaining)", x.spa, imp(func(f map[string]string) { f["actor_token"] = impToken; f["subject_token"] = x.olga.ID }), "invalid_grant", "actor_token was itself obtained by token exchange"},
		{"joining another staff member's session", x.spa, imp(func(f map[string]string) {
			f["subject_token"], f["subject_token_type"], f["actor_token"] = impToken, typeAT, beaToken
		}), "invalid_request", "impersonation starts from the user"},
		{"refresh token where the rule allows none", x.spa, imp(func(f map[string]string) {
			f["requested_token_type"] = "urn:ietf:params:oauth:token-type:refresh_token"
		}), "invalid_request", "does not allow refresh tokens"},
		{"unknown requested type", x.spa, imp(func(f map[string]string) { f["requested_token_type"] = "urn:x:saml2" }), "invalid_request", `requested_token_type "urn:x:saml2" is not supported`},
		{"token-type confusion: opaque as jwt", x.backend, imp(func(f map[string]string) {
			f["subject_token"] = opaqueDana
			f["subject_token_type"] = typeJWT
			f["actor_token"] = samForBackend
		}), "invalid_request", "is an opaque token but its type says jwt"},
		{"token-type confusion: id_token subject", x.spa, imp(func(f map[string]string) { f["subject_token_type"] = typeID }), "invalid_request", "is not a JWT but its type says id_token"},
		{"unknown subject token type", x.spa, imp(func(f map[string]string) { f["subject_token_type"] = "urn:x:saml2" }), "invalid_request", `subject_token_type "urn:x:saml2" is not supported`},
		{"user id without actor", x.spa, imp(func(f map[string]string) { delete(f, "actor_token"); delete(f, "actor_token_type") }), "invalid_request", "a user ID subject needs an actor_token"},
		{"actor token without type", x.spa, imp(func(f map[string]string) { delete(f, "actor_token_type") }), "invalid_request", "must be sent together"},
		{"public client with another client's actor token", x.spa, imp(func(f map[string]string) { f["actor_token"] = samForBackend }), "unauthorized_client", "may only send actor tokens issued to itself"},
		{"confidential client with another client's actor token", x.agentApp, del(func(f map[string]string) { f["actor_token"] = agentAtWeb; f["subject_token"] = danaAtApp }), "unauthorized_client", "actor_token_clients"},
		{"public client not in the rule", x.spa2, imp(func(f map[string]string) {}), "unauthorized_client", "is not among its clients"},
		{"delegation by an actor no rule names", x.agentApp, del(func(f map[string]string) { f["actor_token"] = strangerToken }), "unauthorized_client", "is not among its actors"},
		{"delegation scope widening", x.agentApp, del(func(f map[string]string) { f["scope"] = "write" }), "invalid_scope", `scope "write" exceeds`},
		{"down-scoping another client's token (the ZITADEL trap)", x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT}, "unauthorized_client", "a client may narrow only its own tokens"},
		{"down-scoping that widens scope", x.web, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "scope": "admin"}, "invalid_scope", `scope "admin" exceeds what the subject_token allow`},
		{"down-scoping that adds an audience", x.web, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "audience": x.api.ID}, "invalid_target", "down-scoping can only narrow it"},
		{"delegation through a client no rule lists", x.web, del(func(f map[string]string) {}), "unauthorized_client", "is not among its clients"},
	}
	for _, a := range corpus {
		t.Run(a.name, func(t *testing.T) {
			before := len(x.audits(t, audit.TypeExchangeDenied))
			if aud, ok := a.form["audience"]; ok && strings.Contains(aud, "\x00") {
				code, body := x.exchangeAsMulti(a.client, a.form, "audience", strings.Split(aud, "\x00"))
				checkRefusal(t, x, before, code, body, a.code, a.frag)
				return
			}
			code, body := x.exchangeAs(a.client, a.form)
			checkRefusal(t, x, before, code, body, a.code, a.frag)
		})
	}
	if len(corpus) < 40 {
		t.Fatalf("the corpus has %d attacks; keep at least 40", len(corpus))
	}
}

// TestUnknownUserIDsReadLikeUnnamedUsers: impersonating an unknown user ID is refused exactly like
// impersonating a user no rule names, a user holding a role the actor lacks, or a locked user no
// rule names: the same status, headers and body but for the ID the caller sent, so refusals do not
// tell which IDs exist (docs/token-exchange.md).
func TestUnknownUserIDsReadLikeUnnamedUsers(t *testing.T) {
	x := newXEnv(t)
	if err := x.Server.Store.PutRole(context.Background(), &store.Role{Name: "staff"}); err != nil {
		t.Fatal(err)
	}
	unnamed := x.CreateUser("nora", "staff")
	lockedUnnamed := x.CreateUser("luke", "staff")
	lockUser(t, x, "luke")
	answer := func(subject string) string {
		t.Helper()
		resp := x.Do("/oauth/v2/token", map[string]string{"grant_type": grantTE, "client_id": x.spa.ID, "subject_token": subject, "subject_token_type": typeUser,
			"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "ticket"}, nil)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header
		// The ID the caller sent is the only part that may differ.
		return strings.ReplaceAll(fmt.Sprintf("%d %s|%s|%s|%s|%s", resp.StatusCode, h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("Pragma"), h.Get("WWW-Authenticate"), b), subject, "<subject>")
	}
	unknown := answer("u-000000000000")
	if !strings.Contains(unknown, "unauthorized_client") || !strings.Contains(unknown, "user <subject> is not among its subjects") {
		t.Fatalf("an unknown user ID: %s", unknown)
	}
	for name, id := range map[string]string{"a user no rule names": unnamed.ID, "a user holding a role the actor lacks": x.olga.ID, "a locked user no rule names": lockedUnnamed.ID} {
		if got := answer(id); got != unknown {
			t.Errorf("%s is refused otherwise than an unknown ID:\n got  %s\n want %s", name, got, unknown)
		}
	}
}

// checkRefusal asserts a corpus row's refusal: its code, its own description fragment, no token,
// and exactly one new exchange.denied event (there were before), carrying the same description.
// Rows may share a description, so the count, not only the last event, tells this row's apart.
func checkRefusal(t *testing.T, x *xenv, before, code int, body map[string]any, errCode, frag string) {
	t.Helper()
	desc, _ := body["error_description"].(string)
	if code/100 != 4 || body["error"] != errCode || body["access_token"] != nil || !strings.Contains(desc, frag) {
		t.Fatalf("want refusal %s containing %q, got %d %v", errCode, frag, code, body)
	}
	denied := x.audits(t, audit.TypeExchangeDenied)
	if len(denied) != before+1 {
		t.Fatalf("%d exchange.denied events for this refusal, want 1", len(denied)-before)
	}
	var d struct {
		Description string `json:"description"`
	}
	if err := json.Unmarshal(denied[len(denied)-1].Details, &d); err != nil {
		t.Fatal(err)
	}
	if d.Description != desc {
		t.Fatalf("the new exchange.denied event is not this refusal's: %q", d.Description)
	}
}

// exchangeAsMulti posts an exchange as client c with one parameter repeated.
func (x *xenv) exchangeAsMulti(c testenv.Client, form map[string]string, name string, values []string) (int, map[string]any) {
	v := url.Values{"grant_type": {grantTE}}
	for k, val := range form {
		v.Set(k, val)
	}
	v[name] = values
	if c.AuthMethod == store.AuthNone {
		v.Set("client_id", c.ID)
	}
	req, _ := http.NewRequest("POST", x.URL+"/oauth/v2/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod != store.AuthNone {
		req.SetBasicAuth(c.ID, c.Secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		x.T.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// mustIDToken signs an ID token about user for client with the scope a sign-in granted (read).
func mustIDToken(t *testing.T, x *xenv, user, client string) string {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	raw, err := x.Server.Tokens.IssueIDToken(&tokens.Access{Subject: user, ClientID: client, Scope: []string{"read"}, IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)}, "ES256", nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func lockUser(t *testing.T, x *xenv, username string) {
	t.Helper()
	u, err := x.Server.Store.GetUserByUsername(context.Background(), username)
	if err != nil {
		t.Fatal(err)
	}
	u.Locked = true
	x.Server.Store.UpdateUser(context.Background(), u)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeUser, Key: u.ID})
}

func mustJTI(t *testing.T, x *xenv, raw string) string {
	a, inactive, err := x.Server.Tokens.Resolve(context.Background(), raw)
	if err != nil || inactive != nil {
		t.Fatalf("resolve: %v %v", inactive, err)
	}
	return a.ID
}

func expiredToken(t *testing.T, x *xenv) string {
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	raw, err := x.Server.Tokens.Issue(context.Background(), &tokens.Access{Subject: x.sam.ID, SubjectKind: store.KindUser, ClientID: x.spa.ID,
		Audience: []string{x.spa.ID}, Scope: []string{"read"}, IssuedAt: past, ExpiresAt: past.Add(time.Minute)}, store.FormatJWT, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRFC8693Examples replays the request shapes of RFC 8693 §2.3 and Appendix A (with Signet's
// own tokens in place of the RFC's) and checks the answers have the RFC's shape.
func TestRFC8693Examples(t *testing.T) {
	x := newXEnv(t)
	t.Run("§2.3: a resource server narrows the token it received to a backend (resource)", func(t *testing.T) {
		// The front-end holds a token issued to it for itself and the backend API, and asks for one
		// limited to the backend (down-scoping keeps only audiences the token already has).
		upd := *x.web.Client
		upd.Audiences = []string{x.api.ID}
		if err := x.Server.Store.UpdateClient(context.Background(), &upd); err != nil {
			t.Fatal(err)
		}
		x.Server.Watcher.Poll(context.Background())
		webToken, _, err := x.Server.OAuth.IssueAccessToken(context.Background(), oauth.Issue{SubjectKind: store.KindUser, Subject: x.dana.ID,
			ClientID: upd.ID, Client: &upd, Scope: []string{"read"}, Audience: []string{x.api.ID}})
		if err != nil {
			t.Fatal(err)
		}
		code, body := x.exchangeAs(x.web, map[string]string{"subject_token": webToken.AccessToken, "subject_token_type": typeAT, "resource": x.api.ID})
		if code != 200 || body["issued_token_type"] != typeAT || body["token_type"] != "Bearer" || body["expires_in"] == nil {
			t.Fatalf("§2.3 answer: %d %v", code, body)
		}
		if info := x.introspect(t, body["access_token"].(string)); info["active"] != true || len(info["aud"].([]any)) != 1 || info["aud"].([]any)[0] != x.api.ID {
			t.Fatalf("the narrowed token must be for the backend only: %v", info)
		}
	})
	t.Run("A.2: delegation with subject and actor JWTs answers a JWT carrying act", func(t *testing.T) {
		code, body := x.exchangeAs(x.agentApp, map[string]string{"audience": x.api.ID,
			"subject_token": x.danaToken, "subject_token_type": typeJWT, "actor_token": x.agentToken, "actor_token_type": typeJWT,
			"requested_token_type": typeJWT})
		if code != 200 || body["issued_token_type"] != typeJWT || body["expires_in"] == nil {
			t.Fatalf("A.2 answer: %d %v", code, body)
		}
		// Signet's JWTs are access tokens (RFC 9068), so token_type is Bearer rather than the
		// RFC example's N_A, which §2.2.1 reserves for tokens that are not access tokens.
		if body["token_type"] != "Bearer" {
			t.Fatalf("token_type %v", body["token_type"])
		}
		parts := strings.Split(body["access_token"].(string), ".")
		var claims map[string]any
		b, _ := base64URLDecode(parts[1])
		json.Unmarshal(b, &claims)
		act, _ := claims["act"].(map[string]any)
		if claims["sub"] != x.dana.ID || act["sub"] != x.agent.ID || claims["iss"] != x.URL {
			t.Fatalf("A.2 token claims: %v", claims)
		}
	})
	t.Run("A.1: a JWT subject without an actor for another context is refused with the fix", func(t *testing.T) {
		code, body := x.exchangeAs(x.agentApp, map[string]string{"audience": "urn:example:cooperation-context",
			"subject_token": x.danaToken, "subject_token_type": typeJWT})
		if code != 400 || body["error"] != "unauthorized_client" || !strings.Contains(body["error_description"].(string), "actor_token") {
			t.Fatalf("A.1 with someone else's token: %d %v", code, body)
		}
	})
}

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
