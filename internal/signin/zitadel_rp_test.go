package signin_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	zrp "github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// zitadelRP is a relying party built with zitadel/oidc's rp package, serving its own login and
// callback handlers on loopback, as an application would.
type zitadelRP struct {
	origin  string
	cookies *httphelper.CookieHandler
	got     chan zitadelResult
}

type zitadelResult struct {
	tokens *oidc.Tokens[*oidc.IDTokenClaims]
	info   *oidc.UserInfo
	state  string
}

// startZitadelRP registers a client (edited by edit) whose redirect URI is the RP server's
// /callback, and runs zitadel's AuthURLHandler on /login and CodeExchangeHandler on /callback.
func startZitadelRP(t *testing.T, env *testenv.Env, edit func(*store.Client)) *zitadelRP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	srv.Listener = ln
	origin := "http://" + ln.Addr().String()
	c := store.Client{Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic, RedirectURIs: []string{origin + "/callback"},
		GrantTypes: []string{"authorization_code"}}
	if edit != nil {
		edit(&c)
	}
	cl := env.CreateClient(c)

	key := make([]byte, 32)
	rand.Read(key)
	cookies := httphelper.NewCookieHandler(key, key, httphelper.WithUnsecure())
	party, err := zrp.NewRelyingPartyOIDC(context.Background(), env.URL, cl.ID, cl.Secret, origin+"/callback",
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail}, zrp.WithPKCE(cookies), zrp.WithSigningAlgsFromDiscovery(),
		zrp.WithVerifierOpts(zrp.WithIssuedAtOffset(5*time.Second)))
	if err != nil {
		t.Fatalf("zitadel rp: %v", err)
	}
	if !party.IsPKCE() {
		t.Fatal("zitadel rp does not use PKCE")
	}
	z := &zitadelRP{origin: origin, cookies: cookies, got: make(chan zitadelResult, 1)}
	mux := http.NewServeMux()
	mux.Handle("/login", zrp.AuthURLHandler(func() string { return "st-" + rand.Text() }, party))
	mux.Handle("/callback", zrp.CodeExchangeHandler(zrp.UserinfoCallback(
		func(w http.ResponseWriter, r *http.Request, tokens *oidc.Tokens[*oidc.IDTokenClaims], state string, _ zrp.RelyingParty, info *oidc.UserInfo) {
			z.got <- zitadelResult{tokens: tokens, info: info, state: state}
			w.Write([]byte("signed in as " + info.Subject))
		}), party))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return z
}

// signIn starts at the RP's /login in b, posts the login form, and returns what the RP's callback
// received after it exchanged the code and called userinfo.
func (z *zitadelRP) signIn(t *testing.T, b *testenv.Browser, username, password string) zitadelResult {
	t.Helper()
	b.Follow(z.origin)
	p := b.Open(z.origin + "/login")
	if !strings.HasPrefix(p.URL.String(), b.Origin+"/ui/login/") {
		t.Fatalf("the RP's /login did not lead to Signet's login page: %s (%d) %s", p.URL, p.Status, p.Text())
	}
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": username, "password": password})
	if p.URL.Path != "/callback" || p.Status != http.StatusOK {
		t.Fatalf("after the password the browser is at %s (status %d): %s", p.URL, p.Status, p.Text())
	}
	select {
	case res := <-z.got:
		if !strings.HasPrefix(res.state, "st-") {
			t.Fatalf("the callback got state %q", res.state)
		}
		return res
	default:
		t.Fatalf("the RP's callback answered %q without receiving tokens", p.Body)
		return zitadelResult{}
	}
}

func TestSignInWithZitadelRP(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := env.CreateUserWithPassword("alice", "correct horse battery")

	for _, tc := range []struct {
		name string
		edit func(*store.Client)
	}{
		{"confidential web client", nil},
		{"public spa client", func(c *store.Client) { c.Type, c.AuthMethod = store.ClientSPA, store.AuthNone }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := startZitadelRP(t, env, tc.edit)
			before := time.Now().Truncate(time.Second)
			res := z.signIn(t, env.NewBrowser(), "alice", "correct horse battery")
			c := res.tokens.IDTokenClaims
			if c.Subject != alice.ID || c.Issuer != env.URL || c.Nonce != "" || c.SessionID == "" ||
				c.AuthTime.AsTime().Before(before) || !slices.Equal([]string(c.AuthenticationMethodsReferences), []string{"pwd"}) ||
				c.AuthenticationContextClassReference != "password" || c.PreferredUsername != "" || c.Email != "" {
				b, _ := json.Marshal(c)
				t.Fatalf("ID token claims verified by zitadel: %s", b)
			}
			if res.tokens.AccessToken == "" || res.tokens.IDToken == "" || !strings.EqualFold(res.tokens.TokenType, "bearer") {
				t.Fatalf("tokens: %+v", res.tokens.Token)
			}
			// The scope's claims come from userinfo (OIDC Core 5.4), not the ID token.
			if res.info.Subject != alice.ID || res.info.Email != "alice@example.com" || res.info.PreferredUsername != "alice" {
				t.Fatalf("userinfo %+v", res.info)
			}
		})
	}

	t.Run("Signet refuses the code when the RP sends another verifier", func(t *testing.T) {
		// The RP's PKCE cookie is replaced (sealed with the RP's own key) by one holding another
		// verifier: zitadel then sends that verifier, and Signet must refuse the code.
		z := startZitadelRP(t, env, nil)
		b := env.NewBrowser()
		b.Follow(z.origin)
		p := b.Open(z.origin + "/login")
		forged, err := z.cookies.CreateCookie("pkce", "another-verifier-"+rand.Text()+rand.Text())
		if err != nil {
			t.Fatal(err)
		}
		forged.Path = "/"
		b.HTTP.Jar.SetCookies(p.URL, []*http.Cookie{forged})
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": "correct horse battery"})
		if p.URL.Path != "/callback" || p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "failed to exchange token") || !strings.Contains(p.Body, "invalid_grant") {
			t.Fatalf("with a wrong verifier the RP's callback answered %d at %s: %s", p.Status, p.URL, p.Body)
		}
		select {
		case <-z.got:
			t.Fatal("the callback received tokens for a wrong code verifier")
		default:
		}
	})
}

// TestSignInWithZitadelRPAndTOTP: zitadel's relying party signs in a user who must use a second
// factor: enrolment at the first sign-in (the secret read off the page, the first code typed), the
// recovery codes acknowledged, then a second sign-in in another browser with a TOTP code; zitadel
// verifies both ID tokens, whose amr and acr say a second factor was used.
func TestSignInWithZitadelRPAndTOTP(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	dana := createMFAUser(t, env, "dana", "correct horse battery")
	z := startZitadelRP(t, env, nil)

	finish := func(b *testenv.Browser, p *testenv.Page) zitadelResult {
		t.Helper()
		if p.URL.Path != "/callback" || p.Status != http.StatusOK {
			t.Fatalf("after the second factor the browser is at %s (status %d): %s", p.URL, p.Status, p.Text())
		}
		select {
		case res := <-z.got:
			return res
		default:
			t.Fatalf("the RP's callback answered %q without receiving tokens", p.Body)
			return zitadelResult{}
		}
	}
	check := func(res zitadelResult) {
		t.Helper()
		c := res.tokens.IDTokenClaims
		if c.Subject != dana.ID || c.AuthenticationContextClassReference != "mfa" ||
			!hasAll([]string(c.AuthenticationMethodsReferences), "pwd", "otp", "mfa") {
			b, _ := json.Marshal(c)
			t.Fatalf("ID token claims verified by zitadel: %s", b)
		}
	}

	b := env.NewBrowser()
	b.Follow(z.origin)
	p := b.Open(z.origin + "/login")
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "dana", "password": "correct horse battery"})
	secret := enrolmentSecret(t, p)
	now := time.Now()
	p = b.Submit(p, "/ui/login/enrol", map[string]string{"code": mfa.Code(secret, now)})
	if n := len(recoveryRE.FindAllString(p.Body, -1)); n != 10 {
		t.Fatalf("the recovery codes page shows %d codes, want 10: %s", n, p.Text())
	}
	check(finish(b, b.Submit(p, "/ui/login/recovery", nil)))

	// Another browser: password, then the next step's code (the enrolment's was used).
	b2 := env.NewBrowser()
	b2.Follow(z.origin)
	p = b2.Open(z.origin + "/login")
	p = b2.Submit(p, "/ui/login/password", map[string]string{"username": "dana", "password": "correct horse battery"})
	if !p.HasForm("/ui/login/factor") {
		t.Fatalf("want the second-factor page: %s", p.Text())
	}
	check(finish(b2, b2.Submit(p, "/ui/login/factor", map[string]string{"code": mfa.Code(secret, now.Add(30*time.Second))})))
}
