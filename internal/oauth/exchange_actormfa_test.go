package oauth_test

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

const mfaCallback = "http://127.0.0.1:9/callback" // never reached: the test browser stops at it

// secretShown is the TOTP secret the enrolment page shows (grouped by four for typing).
var secretShown = regexp.MustCompile(`<code class="secret">([A-Z2-7 ]+)</code>`)

// staffSignIn signs username in at the hosted pages through console's authorization code flow and
// returns the access token. With enrol, the sign-in asks for a second factor (acr_values=mfa), the
// user enrols TOTP on the page and confirms it with the code the secret gives now.
func staffSignIn(t *testing.T, env *testenv.Env, console testenv.Client, b *testenv.Browser, username, password string, enrol bool) string {
	t.Helper()
	conf := &oauth2.Config{ClientID: console.ID, ClientSecret: console.Secret, RedirectURL: mfaCallback, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: env.URL + "/oauth/v2/authorize", TokenURL: env.URL + "/oauth/v2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if enrol {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", "mfa"))
	}
	p := b.Open(conf.AuthCodeURL("st", opts...))
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": username, "password": password})
	if enrol {
		m := secretShown.FindStringSubmatch(p.Body)
		if m == nil {
			t.Fatalf("no TOTP secret on the enrolment page: %s", p.Text())
		}
		secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		p = b.Submit(p, "/ui/login/enrol", map[string]string{"code": mfa.Code(secret, time.Now())})
		p = b.Submit(p, "/ui/login/recovery", nil)
	}
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("no code; page %s status %d: %s", p.URL, p.Status, p.Text())
	}
	tok, err := conf.Exchange(context.Background(), p.Location.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// introspectAny introspects as the gateway, which sees every token (a sign-in's token is not for the API).
func introspectAny(t *testing.T, x *xenv, raw string) map[string]any {
	t.Helper()
	_, body := x.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, x.gateway.ID, x.gateway.Secret)
	return body
}

// TestRequireActorMFA: under a rule with require_actor_mfa 5m, an admin whose access token comes
// from a sign-in that passed TOTP impersonates; a password-only sign-in, a second factor older than
// the window, an ended sign-in and a client's own token are refused with what is missing; an
// impersonation token carries no sign-in of anyone, and ending the actor's sign-in ends the
// impersonation session it opened (no refresh).
func TestRequireActorMFA(t *testing.T) { onBackends(t, testRequireActorMFA) }

func testRequireActorMFA(t *testing.T, backend string) {
	x := newXEnvOn(t, backend)
	ctx := context.Background()
	st := x.Server.Store
	console := x.CreateClient(store.Client{Name: "console", Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic, RedirectURIs: []string{mfaCallback},
		GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials", grantTE}})
	ada := x.CreateUserWithPassword("ada", "correct horse battery", "support")
	ben := x.CreateUserWithPassword("ben", "battery staple horse", "support")
	rule := exchange.Rule{Name: "admins-with-fresh-mfa", Mode: exchange.ModeImpersonation,
		Actors:   exchange.Selector{Roles: []string{"support"}, Clients: []string{console.ID}},
		Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{console.ID}, Audiences: []string{x.api.ID},
		AllowRefresh: true, RequireActorMFA: exchange.Duration(5 * time.Minute)}
	if err := x.Server.Policy.Put(ctx, rule); err != nil {
		t.Fatal(err)
	}
	impersonate := func(actorToken string, extra map[string]string) (int, map[string]any) {
		form := map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser, "actor_token": actorToken, "actor_token_type": typeAT, "audience": x.api.ID}
		for k, v := range extra {
			form[k] = v
		}
		return x.exchangeAs(console, form)
	}
	refused := func(what string, code int, body map[string]any, want ...string) {
		t.Helper()
		desc, _ := body["error_description"].(string)
		if code != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("%s: want invalid_grant, got %d %v", what, code, body)
		}
		for _, w := range want {
			if !strings.Contains(desc, w) {
				t.Fatalf("%s: description %q lacks %q", what, desc, w)
			}
		}
	}
	const needs = `rule "admins-with-fresh-mfa" requires the actor to have passed a second factor within 5m0s`

	adaBrowser := x.NewBrowser()
	adaToken := staffSignIn(t, x.Env, console, adaBrowser, "ada", "correct horse battery", true)
	adaInfo := introspectAny(t, x, adaToken)
	sid, _ := adaInfo["sid"].(string)
	if !strings.HasPrefix(sid, "bs-") {
		t.Fatalf("the sign-in's access token has no sid: %v", adaInfo)
	}
	code, body := impersonate(adaToken, map[string]string{"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"})
	if code != 200 {
		t.Fatalf("a fresh second factor: %d %v", code, body)
	}
	imp, refresh := body["access_token"].(string), body["refresh_token"].(string)
	info := x.introspect(t, imp)
	if info["active"] != true || info["sub"] != x.dana.ID || info["sid"] != nil {
		t.Fatalf("the impersonation token: %v (it must carry no sign-in: it never proves anyone's second factor)", info)
	}
	allowed := x.audits(t, audit.TypeExchangeAllowed)
	var details exchange.Allowed
	json.Unmarshal(allowed[len(allowed)-1].Details, &details)
	if details.Rule != rule.Name || details.ActorSignIn != sid || details.ActorMFAAt == "" {
		t.Fatalf("the audit event must say which sign-in met the rule and when its second factor passed: %+v", details)
	}

	// An impersonation token never acts, whatever sign-in its subject has.
	code, body = impersonate(imp, nil)
	refused("an impersonation token as actor", code, body, "itself obtained by token exchange")

	// A password-only sign-in.
	benToken := staffSignIn(t, x.Env, console, x.NewBrowser(), "ben", "battery staple horse", false)
	code, body = impersonate(benToken, nil)
	refused("a password-only sign-in", code, body, needs, "passed none")

	// The client's own token: client credentials, and one minted as `signet token issue` does.
	_, cc := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, console.ID, console.Secret)
	ccToken, _ := cc["access_token"].(string)
	if ccToken == "" {
		t.Fatalf("client credentials: %v", cc)
	}
	code, body = impersonate(ccToken, nil)
	refused("a client-credentials actor", code, body, needs, "no sid")
	code, body = impersonate(x.Token(store.KindUser, ada.ID, console.Client), nil)
	refused("a token minted without a sign-in", code, body, needs, "no sid")

	// A second factor older than the window.
	s, err := st.GetBrowserSession(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ReauthBrowserSession(ctx, sid, s.SecretHash, s.AuthTime, s.AMR, time.Now().Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	code, body = impersonate(adaToken, nil)
	refused("a stale second factor", code, body, needs, "sign-in "+sid+" passed one ")
	if desc := body["error_description"].(string); !regexp.MustCompile(`passed one (9m59s|10m0s|10m1s) ago`).MatchString(desc) {
		t.Fatalf("the refusal must say how old the second factor is: %q", desc) // a second either way: the store's time precision
	}
	if err := st.ReauthBrowserSession(ctx, sid, s.SecretHash, s.AuthTime, s.AMR, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, body = impersonate(adaToken, nil); code != 200 {
		t.Fatalf("fresh again: %d %v", code, body)
	}
	// A down-scoped copy of her own token is still her sign-in's.
	code, body = x.exchangeAs(console, map[string]string{"subject_token": adaToken, "subject_token_type": typeAT, "scope": "openid"})
	if code != 200 {
		t.Fatalf("down-scoping her own token: %d %v", code, body)
	}
	if code, body = impersonate(body["access_token"].(string), nil); code != 200 {
		t.Fatalf("a down-scoped copy of the actor's own token keeps its sign-in: %d %v", code, body)
	}

	// Ben's sign-in ended where the revocation of its tokens has not arrived (another replica):
	// the session's record alone refuses.
	benSid, _ := introspectAny(t, x, benToken)["sid"].(string)
	if err := st.EndBrowserSession(ctx, benSid, "admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	code, body = impersonate(benToken, nil)
	refused("an ended sign-in", code, body, needs, "sign-in "+benSid+" has ended")
	_ = ben

	// Ada signs out: her token, and the impersonation session it opened, end with her sign-in.
	p := adaBrowser.Open("/oidc/v1/end_session")
	adaBrowser.Submit(p, "/ui/logout", nil)
	code, body = impersonate(adaToken, nil)
	refused("after sign-out", code, body, "actor_token was revoked")
	code, body = x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": refresh}, console.ID, console.Secret)
	if code != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("refreshing an impersonation whose actor signed out: %d %v", code, body)
	}
	if x.introspect(t, imp)["active"] != false {
		t.Fatal("the impersonation token outlived its actor's sign-in")
	}
}
