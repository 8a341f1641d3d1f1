package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
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

func newXEnv(t testing.TB) *xenv {
	env := testenv.Start(t, testenv.Options{})
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
func TestImpersonationFromAnAdminSPA(t *testing.T) {
	x := newXEnv(t)
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
func TestDelegationChainsNest(t *testing.T) {
	x := newXEnv(t)
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

// TestKillSwitchAndSessionEnd: ending a session or flipping the kill switch makes derived tokens
// inactive at once, including tokens exchanged again from them.
func TestKillSwitchAndSessionEnd(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	_, body := x.impersonate("ticket 1")
	tok1 := body["access_token"].(string)
	// Exchanged again by the SPA (down-scoping): same session.
	_, again := x.exchangeAs(x.spa, map[string]string{"subject_token": tok1, "subject_token_type": typeAT, "scope": "read"})
	tok2, _ := again["access_token"].(string)
	if tok2 == "" || x.introspect(t, tok2)["active"] != true {
		t.Fatalf("down-scoping an impersonation token: %v", again)
	}
	session := x.introspect(t, tok1)["signet_exchange"].(map[string]any)["session"].(string)
	if err := x.Server.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeSession, Value: session, At: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{tok1, tok2} {
		if x.introspect(t, raw)["active"] != false {
			t.Fatal("a token of an ended session is still active")
		}
	}
	_, body = x.impersonate("ticket 2")
	tok3 := body["access_token"].(string)
	if err := x.Server.Sessions.Disable(ctx, "test", "incident"); err != nil {
		t.Fatal(err)
	}
	if x.introspect(t, tok3)["active"] != false {
		t.Fatal("the kill switch left an impersonation token active")
	}
	code, body := x.impersonate("ticket 3")
	if code != 403 || body["error"] != "access_denied" || !strings.Contains(body["error_description"].(string), "kill switch") {
		t.Fatalf("impersonation while disabled: %d %v", code, body)
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

// TestAuditFailureIssuesNoToken: when the audit write fails, the exchange fails and no token or
// session exists.
func TestAuditFailureIssuesNoToken(t *testing.T) {
	x := newXEnv(t)
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
func TestEscalationCorpus(t *testing.T) {
	x := newXEnv(t)
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
	samForBackend := x.Token(store.KindUser, x.sam.ID, x.backend.Client, "read", "write")
	danaAsActor := x.Token(store.KindUser, x.dana.ID, x.spa.Client, "read")
	opaqueDana := x.Token(store.KindUser, x.dana.ID, x.backend.Client, "read")
	strangerToken := x.Token(store.KindServiceAccount, x.stranger.ID, x.agentApp.Client, "read")
	forgedAct := forged(t, map[string]any{"iss": x.URL, "sub": x.dana.ID, "aud": []string{x.api.ID}, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "f", "client_id": x.agentApp.ID, "act": map[string]any{"sub": x.agent.ID}})
	foreign := forged(t, map[string]any{"iss": "https://evil.example", "sub": x.dana.ID, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "g"})

	corpus := []struct {
		name   string
		client testenv.Client
		form   map[string]string
		code   string
	}{
		{"scope widening", x.spa, imp(func(f map[string]string) { f["scope"] = "read admin" }), "invalid_scope"},
		{"audience swap", x.spa, imp(func(f map[string]string) { f["audience"] = x.backend.ID }), "invalid_target"},
		{"resource swap", x.spa, imp(func(f map[string]string) { delete(f, "audience"); f["resource"] = "https://hr.example" }), "invalid_target"},
		{"actor and subject swapped", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.sam.ID; f["actor_token"] = danaAsActor }), "unauthorized_client"},
		{"self-impersonation", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.sam.ID }), "invalid_request"},
		{"revoked actor token", x.spa, imp(func(f map[string]string) { f["actor_token"] = revoked }), "invalid_grant"},
		{"expired actor token", x.spa, imp(func(f map[string]string) { f["actor_token"] = expired }), "invalid_grant"},
		{"forged act in a subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = forgedAct }), "invalid_grant"},
		{"foreign issuer subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = foreign }), "invalid_grant"},
		{"malformed subject token", x.agentApp, del(func(f map[string]string) { f["subject_token"] = "not-a-token" }), "invalid_grant"},
		{"user-id enumeration", x.spa, imp(func(f map[string]string) { f["subject_token"] = "u-does-not-exist" }), "unauthorized_client"},
		{"impersonating an admin", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.olga.ID }), "unauthorized_client"},
		{"impersonating a locked user", x.spa, imp(func(f map[string]string) { f["subject_token"] = x.locked.ID }), "invalid_grant"},
		{"no reason", x.spa, imp(func(f map[string]string) { delete(f, "reason") }), "invalid_request"},
		{"impersonation token as actor (chaining)", x.spa, imp(func(f map[string]string) { f["actor_token"] = impToken; f["subject_token"] = x.olga.ID }), "invalid_grant"},
		{"refresh token where the rule allows none", x.spa, imp(func(f map[string]string) {
			f["requested_token_type"] = "urn:ietf:params:oauth:token-type:refresh_token"
		}), "invalid_request"},
		{"unknown requested type", x.spa, imp(func(f map[string]string) { f["requested_token_type"] = "urn:x:saml2" }), "invalid_request"},
		{"token-type confusion: opaque as jwt", x.backend, imp(func(f map[string]string) {
			f["subject_token"] = opaqueDana
			f["subject_token_type"] = typeJWT
			f["actor_token"] = samForBackend
		}), "invalid_request"},
		{"token-type confusion: id_token subject", x.spa, imp(func(f map[string]string) { f["subject_token_type"] = "urn:ietf:params:oauth:token-type:id_token" }), "invalid_request"},
		{"user id without actor", x.spa, imp(func(f map[string]string) { delete(f, "actor_token"); delete(f, "actor_token_type") }), "invalid_request"},
		{"actor token without type", x.spa, imp(func(f map[string]string) { delete(f, "actor_token_type") }), "invalid_request"},
		{"public client with another client's actor token", x.spa, imp(func(f map[string]string) { f["actor_token"] = samForBackend }), "unauthorized_client"},
		{"public client not in the rule", x.spa2, imp(func(f map[string]string) {}), "unauthorized_client"},
		{"delegation by an actor no rule names", x.agentApp, del(func(f map[string]string) { f["actor_token"] = strangerToken }), "unauthorized_client"},
		{"delegation scope widening", x.agentApp, del(func(f map[string]string) { f["scope"] = "write" }), "invalid_scope"},
		{"down-scoping another client's token (the ZITADEL trap)", x.agentApp, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT}, "unauthorized_client"},
		{"down-scoping that widens scope", x.web, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "scope": "admin"}, "invalid_scope"},
		{"down-scoping that adds an audience", x.web, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT, "audience": x.api.ID}, "invalid_target"},
		{"delegation through a client no rule lists", x.web, del(func(f map[string]string) {}), "unauthorized_client"},
	}
	before := len(x.audits(t, audit.TypeExchangeDenied))
	for _, a := range corpus {
		t.Run(a.name, func(t *testing.T) {
			code, body := x.exchangeAs(a.client, a.form)
			if code/100 != 4 || body["error"] != a.code || body["access_token"] != nil {
				t.Fatalf("want refusal %s, got %d %v", a.code, code, body)
			}
			if d, _ := body["error_description"].(string); d == "" {
				t.Fatal("refusal without a description")
			}
		})
	}
	if got := len(x.audits(t, audit.TypeExchangeDenied)) - before; got != len(corpus) {
		t.Fatalf("%d refusals audited, want %d", got, len(corpus))
	}
	if len(corpus) < 25 {
		t.Fatalf("the corpus has %d attacks; keep at least 25", len(corpus))
	}
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
