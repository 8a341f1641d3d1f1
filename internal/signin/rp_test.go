package signin_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

const callback = "http://127.0.0.1:9/callback" // never reached: the test browser stops at it

// rp is a relying party set up with x/oauth2 and go-oidc against a running Signet.
type rp struct {
	env      *testenv.Env
	client   testenv.Client
	provider *oidc.Provider
	conf     *oauth2.Config
	user     *store.User
	password string
}

func newRP(t *testing.T, env *testenv.Env, edit func(*store.Client)) *rp {
	t.Helper()
	c := store.Client{Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic, RedirectURIs: []string{callback},
		GrantTypes: []string{"authorization_code", "refresh_token"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}}
	if edit != nil {
		edit(&c)
	}
	cl := env.CreateClient(c)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, env.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &rp{env: env, client: cl, provider: provider, conf: &oauth2.Config{ClientID: cl.ID, ClientSecret: cl.Secret,
		Endpoint: provider.Endpoint(), RedirectURL: callback, Scopes: []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}}}
}

// signIn runs the whole flow in browser b (posting the login form when one is shown) and returns
// the redirect's query.
func (r *rp) signIn(t *testing.T, b *testenv.Browser, username, password string, opts ...oauth2.AuthCodeOption) (url.Values, string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	opts = append(opts, oauth2.S256ChallengeOption(verifier))
	p := b.Open(r.conf.AuthCodeURL("state-123", opts...))
	if p.HasForm("/ui/login/password") {
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": username, "password": password})
	}
	if p.Location == nil {
		t.Fatalf("no redirect to the client; page %s status %d: %s", p.URL, p.Status, p.Text())
	}
	if got := p.Location.Scheme + "://" + p.Location.Host + p.Location.Path; got != callback {
		t.Fatalf("redirected to %s, want %s", p.Location, callback)
	}
	return p.Location.Query(), verifier
}

func TestSignInWithOAuth2AndGoOIDC(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	r := newRP(t, env, nil)
	alice := env.CreateUserWithPassword("alice", "correct horse battery")
	b := env.NewBrowser()
	ctx := context.Background()

	before := time.Now().Truncate(time.Second)
	q, verifier := r.signIn(t, b, "alice", "correct horse battery", oidc.Nonce("n-0S6_WzA2Mj"))
	if q.Get("state") != "state-123" || q.Get("iss") != env.URL || q.Get("code") == "" {
		t.Fatalf("callback query %v: want code, state-123 and iss %s", q, env.URL)
	}
	tok, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.client.ID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refused the ID token: %v", err)
	}
	if idt.Subject != alice.ID || idt.Nonce != "n-0S6_WzA2Mj" {
		t.Fatalf("ID token sub %q nonce %q", idt.Subject, idt.Nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	var claims struct {
		AuthTime int64    `json:"auth_time"`
		AMR      []string `json:"amr"`
		ACR      string   `json:"acr"`
		SID      string   `json:"sid"`
		AZP      string   `json:"azp"`
		Name     string   `json:"preferred_username"`
		Email    string   `json:"email"`
		Scope    string   `json:"scope"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.AuthTime < before.Unix() || claims.AuthTime > time.Now().Unix() || !slices.Equal(claims.AMR, []string{"pwd"}) ||
		claims.ACR != "password" || !strings.HasPrefix(claims.SID, "bs-") || claims.AZP != r.client.ID {
		t.Fatalf("ID token claims %+v", claims)
	}
	// The scope's claims are userinfo's (OIDC Core §5.4): the ID token says who signed in and how.
	if claims.Name != "" || claims.Email != "" || claims.Scope != "" {
		t.Fatalf("ID token claims %+v", claims)
	}
	if tok.RefreshToken == "" {
		t.Fatal("offline_access with the refresh grant allowed gave no refresh token")
	}

	info, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var profile struct {
		Name string `json:"preferred_username"`
	}
	if err := info.Claims(&profile); err != nil {
		t.Fatal(err)
	}
	if info.Subject != alice.ID || info.Email != "alice@example.com" || info.EmailVerified || profile.Name != "alice" {
		t.Fatalf("userinfo %+v (%+v)", info, profile)
	}

	// Refresh: x/oauth2 refreshes an expired token; the answer carries a new ID token about the same sign-in.
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := r.conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if next.AccessToken == tok.AccessToken || next.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	idt2, err := r.provider.Verifier(&oidc.Config{ClientID: r.client.ID}).Verify(ctx, next.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var again struct {
		AuthTime int64  `json:"auth_time"`
		SID      string `json:"sid"`
	}
	idt2.Claims(&again)
	if again.AuthTime != claims.AuthTime || again.SID != claims.SID {
		t.Fatalf("refreshed ID token is about another sign-in: %+v vs %+v", again, claims)
	}

	// Single sign-on: the same browser gets a code at once, without a page.
	p := b.Open(r.conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("a signed-in browser was shown a page: %s", p.Text())
	}
}
