package signin_test

import (
	"context"
	"encoding/base32"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// signInClaims are the ID token claims the second-factor tests look at.
type signInClaims struct {
	Subject  string   `json:"sub"`
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	SID      string   `json:"sid"`
}

// exchange redeems the code of a callback query with go-oidc and x/oauth2 and returns the
// verified ID token's claims.
func (r *rp) exchange(t *testing.T, q url.Values, verifier string) signInClaims {
	t.Helper()
	ctx := context.Background()
	if q.Get("code") == "" {
		t.Fatalf("callback without a code: %v", q)
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
	var c signInClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// start opens the client's authorization URL in b and returns the first page and the PKCE verifier.
func (r *rp) start(t *testing.T, b *testenv.Browser, opts ...oauth2.AuthCodeOption) (*testenv.Page, string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	return b.Open(r.conf.AuthCodeURL("state-mfa", append(opts, oauth2.S256ChallengeOption(verifier))...)), verifier
}

// callbackQuery is the query of the redirect to the client that p must be.
func callbackQuery(t *testing.T, p *testenv.Page) url.Values {
	t.Helper()
	if p.Location == nil || p.Location.Scheme+"://"+p.Location.Host+p.Location.Path != callback {
		t.Fatalf("want the redirect to the client; page %s status %d: %s", p.URL, p.Status, p.Text())
	}
	return p.Location.Query()
}

func createMFAUser(t *testing.T, env *testenv.Env, username, password string) *store.User {
	t.Helper()
	u := &store.User{ID: "u-" + secrets.NewID()[:12], Username: username, Email: username + "@example.com",
		PasswordHash: secrets.HashPassword(password), MFARequired: true, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := env.Server.Store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

var (
	secretRE   = regexp.MustCompile(`<code class="secret">([^<]+)</code>`)
	recoveryRE = regexp.MustCompile(`<li><code>([^<]+)</code></li>`)
)

// enrolmentSecret reads the TOTP secret the enrolment page shows (grouped by four characters).
func enrolmentSecret(t *testing.T, p *testenv.Page) []byte {
	t.Helper()
	if !p.HasForm("/ui/login/enrol") {
		t.Fatalf("want the TOTP enrolment page; page %s status %d: %s", p.URL, p.Status, p.Text())
	}
	m := secretRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("the enrolment page shows no secret: %s", p.Text())
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.Join(strings.Fields(m[1]), ""))
	if err != nil {
		t.Fatalf("secret %q: %v", m[1], err)
	}
	return secret
}

func hasAll(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// A user who must use a second factor enrols TOTP at the first sign-in, then signs in with a TOTP
// code (each good once) or a recovery code; amr and acr say what was used.
func TestSignInWithTOTPThroughGoOIDC(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	r := newRP(t, env, nil)
	const pw = "correct horse battery"
	bob := createMFAUser(t, env, "bob", pw)

	// First sign-in: password, enrolment, recovery codes, code.
	b := env.NewBrowser()
	p, verifier := r.start(t, b, oidc.Nonce("n-1"))
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "bob", "password": pw})
	secret := enrolmentSecret(t, p)
	enrolledAt := time.Now()
	first := mfa.Code(secret, enrolledAt)
	p = b.Submit(p, "/ui/login/enrol", map[string]string{"code": first})
	if !p.HasForm("/ui/login/recovery") {
		t.Fatalf("after confirming the enrolment: page %s status %d: %s", p.URL, p.Status, p.Text())
	}
	codes := recoveryRE.FindAllStringSubmatch(p.Body, -1)
	if len(codes) != 10 {
		t.Fatalf("the recovery codes page shows %d codes, want 10: %s", len(codes), p.Text())
	}
	recovery := codes[3][1]
	c := r.exchange(t, callbackQuery(t, b.Submit(p, "/ui/login/recovery", nil)), verifier)
	if c.Subject != bob.ID || !hasAll(c.AMR, "pwd", "otp", "mfa") || c.ACR != "mfa" {
		t.Fatalf("first sign-in with enrolment: %+v", c)
	}

	// Second sign-in in a new browser: password, then the second-factor page. The code used to
	// enrol is refused (a code is good once), the next step's code is accepted.
	b2 := env.NewBrowser()
	p, verifier = r.start(t, b2)
	p = b2.Submit(p, "/ui/login/password", map[string]string{"username": "bob", "password": pw})
	if !p.HasForm("/ui/login/factor") {
		t.Fatalf("want the second-factor page; page %s status %d: %s", p.URL, p.Status, p.Text())
	}
	p = b2.Submit(p, "/ui/login/factor", map[string]string{"code": first})
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Text(), "That code was already used") || !p.HasForm("/ui/login/factor") {
		t.Fatalf("a used code: status %d: %s", p.Status, p.Text())
	}
	p = b2.Submit(p, "/ui/login/factor", map[string]string{"code": mfa.Code(secret, enrolledAt.Add(30*time.Second))})
	c = r.exchange(t, callbackQuery(t, p), verifier)
	if c.Subject != bob.ID || !hasAll(c.AMR, "pwd", "otp", "mfa") || c.ACR != "mfa" {
		t.Fatalf("sign-in with a TOTP code: %+v", c)
	}

	// Third sign-in: a recovery code instead of the app.
	b3 := env.NewBrowser()
	p, verifier = r.start(t, b3)
	p = b3.Submit(p, "/ui/login/password", map[string]string{"username": "bob", "password": pw})
	p = b3.Submit(p, "/ui/login/factor", map[string]string{"code": recovery})
	c = r.exchange(t, callbackQuery(t, p), verifier)
	if c.Subject != bob.ID || !hasAll(c.AMR, "pwd", "kba", "mfa") || slices.Contains(c.AMR, "otp") || c.ACR != "mfa" {
		t.Fatalf("sign-in with a recovery code: %+v", c)
	}
	// The recovery code is spent.
	b4 := env.NewBrowser()
	p, _ = r.start(t, b4)
	p = b4.Submit(p, "/ui/login/password", map[string]string{"username": "bob", "password": pw})
	if p = b4.Submit(p, "/ui/login/factor", map[string]string{"code": recovery}); p.Status != http.StatusUnauthorized || p.Location != nil {
		t.Fatalf("a spent recovery code: status %d: %s", p.Status, p.Text())
	}
}

// A client that requires a second factor gets one even for a user who does not need it elsewhere.
func TestClientRequiringMFA(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const pw = "correct horse battery"
	env.CreateUserWithPassword("carol", pw)
	normal := newRP(t, env, nil)
	strict := newRP(t, env, func(c *store.Client) { c.RequireMFA = true })

	b := env.NewBrowser()
	p, verifier := normal.start(t, b)
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "carol", "password": pw})
	if c := normal.exchange(t, callbackQuery(t, p), verifier); c.ACR != "password" || !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("normal client: %+v", c)
	}

	b2 := env.NewBrowser()
	p, verifier = strict.start(t, b2)
	p = b2.Submit(p, "/ui/login/password", map[string]string{"username": "carol", "password": pw})
	secret := enrolmentSecret(t, p) // carol has no factor yet: she is asked to enrol one
	p = b2.Submit(p, "/ui/login/enrol", map[string]string{"code": mfa.Code(secret, time.Now())})
	p = b2.Submit(p, "/ui/login/recovery", nil)
	if c := strict.exchange(t, callbackQuery(t, p), verifier); c.ACR != "mfa" || !hasAll(c.AMR, "pwd", "otp", "mfa") {
		t.Fatalf("client requiring MFA: %+v", c)
	}

	// The password-only session in the first browser is not enough for the strict client.
	p, _ = strict.start(t, b)
	if p.Location != nil || !p.HasForm("/ui/login/factor") || p.HasForm("/ui/login/password") {
		t.Fatalf("a password-only session at a client requiring MFA: page %s status %d: %s", p.URL, p.Status, p.Text())
	}
}

// Step-up: a password-only session gets codes silently, but acr_values=mfa asks for the second
// factor only (no password page), and the new ID token says acr mfa about the same sign-in.
func TestStepUpWithACRValues(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const pw = "correct horse battery"
	dave := env.CreateUserWithPassword("dave", pw)
	r := newRP(t, env, nil)

	b := env.NewBrowser()
	p, verifier := r.start(t, b)
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "dave", "password": pw})
	before := r.exchange(t, callbackQuery(t, p), verifier)
	if before.ACR != "password" {
		t.Fatalf("password sign-in: %+v", before)
	}
	p, verifier = r.start(t, b)
	if silent := r.exchange(t, callbackQuery(t, p), verifier); silent.ACR != "password" || silent.SID != before.SID {
		t.Fatalf("silent sign-in: %+v", silent)
	}

	p, verifier = r.start(t, b, oauth2.SetAuthURLParam("acr_values", "mfa"))
	if p.HasForm("/ui/login/password") {
		t.Fatalf("step-up asked for the password again: %s", p.Text())
	}
	secret := enrolmentSecret(t, p) // dave has no factor yet: the step-up enrols one
	p = b.Submit(p, "/ui/login/enrol", map[string]string{"code": mfa.Code(secret, time.Now())})
	p = b.Submit(p, "/ui/login/recovery", nil)
	after := r.exchange(t, callbackQuery(t, p), verifier)
	if after.Subject != dave.ID || after.ACR != "mfa" || !hasAll(after.AMR, "pwd", "otp", "mfa") || after.AuthTime != before.AuthTime || after.SID != before.SID {
		t.Fatalf("after step-up: %+v (before: %+v)", after, before)
	}
}
