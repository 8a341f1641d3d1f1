package logout_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/logout"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

const callback = "http://127.0.0.1:9/callback" // never reached: the test browser stops at it

// receiver is a client's back-channel logout endpoint: it keeps every logout_token posted to it
// and answers with answer(n) for the n-th request (1-based; nil: 200).
type receiver struct {
	*httptest.Server
	t      *testing.T
	answer func(n int, r *http.Request) int

	mu     sync.Mutex
	tokens []string
	bad    []string // requests that were not a form with one logout_token
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{t: t, answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		rc.mu.Lock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || err != nil || len(form["logout_token"]) != 1 {
			rc.bad = append(rc.bad, r.Method+" "+r.Header.Get("Content-Type")+" "+string(body))
		}
		rc.tokens = append(rc.tokens, form.Get("logout_token"))
		n := len(rc.tokens)
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n, r)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		rc.t.Fatalf("malformed back-channel logout requests: %s", strings.Join(rc.bad, "; "))
	}
	return append([]string(nil), rc.tokens...)
}

// app is a relying party registered with Signet.
type app struct {
	client testenv.Client
	conf   *oauth2.Config
}

func newApp(env *testenv.Env, backchannel string) *app {
	c := env.CreateClient(store.Client{Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic, RedirectURIs: []string{callback},
		GrantTypes: []string{"authorization_code"}, BackchannelLogoutURI: backchannel})
	return &app{client: c, conf: &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, RedirectURL: callback, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: env.URL + "/oauth/v2/authorize", TokenURL: env.URL + "/oauth/v2/token", AuthStyle: oauth2.AuthStyleInHeader}}}
}

// signIn signs b in to the app (with the password when b has no session) and returns the ID token.
func (a *app) signIn(t *testing.T, b *testenv.Browser, username, password string) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	p := b.Open(a.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if p.HasForm("/ui/login/password") {
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": username, "password": password})
	}
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("no code for %s; page %s status %d: %s", a.client.ID, p.URL, p.Status, p.Text())
	}
	tok, err := a.conf.Exchange(context.Background(), p.Location.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok.Extra("id_token").(string)
}

// sessionsOf lists a user's browser sessions (sids), newest first, read from the store.
func sessionsOf(t *testing.T, env *testenv.Env, user string) []string {
	t.Helper()
	list, err := env.Server.Store.ListBrowserSessions(context.Background(), user, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	return ids
}

// outcomes lists the audited back-channel outcomes of type typ for a session.
func outcomes(t *testing.T, env *testenv.Env, typ, sid string) []map[string]any {
	t.Helper()
	events, err := env.Server.Store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range events {
		var d map[string]any
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		if d["session"] == sid {
			d["client"] = e.Client
			out = append(out, d)
		}
	}
	return out
}

func endSession(t *testing.T, b *testenv.Browser, idToken string) *testenv.Page {
	t.Helper()
	p := b.Open("/oidc/v1/end_session?" + url.Values{"id_token_hint": {idToken}}.Encode())
	if p.Status != http.StatusOK || !strings.Contains(p.Text(), "signed out") {
		t.Fatalf("end_session: status %d: %s", p.Status, p.Text())
	}
	return p
}

// verify checks a logout token as a client must (Back-Channel Logout §2.6), with go-jose against
// the issuer's published JWKS, and every claim of §2.4.
func verify(t *testing.T, env *testenv.Env, raw, client, user, sid string) {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatalf("logout token is not a JWS: %v", err)
	}
	h := jws.Signatures[0].Header
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" {
		t.Fatalf("typ header %v, want logout+jwt", typ)
	}
	resp, err := http.Get(env.URL + "/oauth/v2/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c["nonce"]; ok {
		t.Errorf("logout token carries a nonce (§2.4 forbids it): %v", c)
	}
	if c["iss"] != env.URL || c["sub"] != user || c["sid"] != sid {
		t.Errorf("iss/sub/sid = %v/%v/%v, want %s/%s/%s", c["iss"], c["sub"], c["sid"], env.URL, user, sid)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != client {
		t.Errorf("aud %v, want [%s]", c["aud"], client)
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	if now := float64(time.Now().Unix()); iat < now-60 || iat > now+1 || exp != iat+120 {
		t.Errorf("iat %v exp %v: want issued just now, valid 2 minutes", iat, exp)
	}
	if jti, _ := c["jti"].(string); jti == "" {
		t.Errorf("no jti: %v", c)
	}
	want := map[string]any{logout.EventURI: map[string]any{}}
	if !reflect.DeepEqual(c["events"], want) {
		t.Errorf("events %v, want %v", c["events"], want)
	}
}

func testEndSessionNotifiesTheSessionsClients(t *testing.T, opt testenv.Options) {
	env := testenv.Start(t, opt)
	alice := env.CreateUserWithPassword("alice", "correct horse battery")
	withURI := newReceiver(t, nil)
	unrelated := newReceiver(t, nil) // a client alice's session never signed in to
	mail, wiki := newApp(env, withURI.URL+"/bcl?tenant=1"), newApp(env, "")
	newApp(env, unrelated.URL)

	b := env.NewBrowser()
	idToken := mail.signIn(t, b, "alice", "correct horse battery")
	mail.signIn(t, b, "alice", "correct horse battery") // single sign-on: a second code, same client
	wiki.signIn(t, b, "alice", "correct horse battery")
	sid := sessionsOf(t, env, alice.ID)[0]
	if len(withURI.received()) != 0 {
		t.Fatal("a logout token before anyone signed out")
	}

	endSession(t, b, idToken)
	testenv.Eventually(t, "mail's logout delivered and audited", func() bool { return len(outcomes(t, env, audit.TypeLogoutDelivered, sid)) == 1 })
	got := withURI.received()
	if len(got) != 1 {
		t.Fatalf("mail received %d logout tokens, want exactly one", len(got))
	}
	verify(t, env, got[0], mail.client.ID, alice.ID, sid)
	if d := outcomes(t, env, audit.TypeLogoutDelivered, sid)[0]; d["client"] != mail.client.ID || d["attempts"] != 1.0 {
		t.Errorf("audited delivery %v", d)
	}
	if n := len(unrelated.received()); n != 0 {
		t.Errorf("a client the session never signed in to received %d logout tokens", n)
	}
	if f := outcomes(t, env, audit.TypeLogoutFailed, sid); len(f) != 0 {
		t.Errorf("failures audited for a client without a back-channel URI, or another: %v", f)
	}
}

func TestEndSessionNotifiesTheSessionsClients(t *testing.T) {
	testEndSessionNotifiesTheSessionsClients(t, testenv.Options{})
}

func TestEndSessionNotifiesTheSessionsClientsOnPostgres(t *testing.T) {
	testEndSessionNotifiesTheSessionsClients(t, testenv.Options{DB: testenv.PostgresDSN(t)})
}

func TestSignOutElsewhereNotifiesTheOtherSessionOnly(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := env.CreateUserWithPassword("alice", "correct horse battery")
	rc := newReceiver(t, nil)
	mail := newApp(env, rc.URL)
	laptop, phone := env.NewBrowser(), env.NewBrowser()
	mail.signIn(t, phone, "alice", "correct horse battery")
	phoneSID := sessionsOf(t, env, alice.ID)[0]
	mail.signIn(t, laptop, "alice", "correct horse battery")
	var laptopSID string
	for _, id := range sessionsOf(t, env, alice.ID) {
		if id != phoneSID {
			laptopSID = id
		}
	}

	page := laptop.Open("/ui/account")
	var form *testenv.Form
	for i, f := range page.Forms {
		if strings.Contains(f.Action, "/ui/account/sessions") && f.Values.Get("session") == "others" {
			form = &page.Forms[i]
		}
	}
	if form == nil {
		t.Fatalf("no 'sign out everywhere else' on the account page: %s", page.Text())
	}
	if p := laptop.Post(form.Action, form.Values); p.Status >= 400 {
		t.Fatalf("sign out elsewhere: %d %s", p.Status, p.Text())
	}
	testenv.Eventually(t, "the phone's logout delivered", func() bool { return len(outcomes(t, env, audit.TypeLogoutDelivered, phoneSID)) == 1 })
	got := rc.received()
	if len(got) != 1 {
		t.Fatalf("%d logout tokens, want one (the phone's session)", len(got))
	}
	verify(t, env, got[0], mail.client.ID, alice.ID, phoneSID)
	if o := outcomes(t, env, audit.TypeLogoutDelivered, laptopSID); len(o) != 0 {
		t.Fatalf("the session still signed in was announced as ended: %v", o)
	}
}

func TestBackChannelRetriesServerErrorsNotRefusals(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := env.CreateUserWithPassword("alice", "correct horse battery")
	flaky := newReceiver(t, func(n int, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	refusing := newReceiver(t, func(int, *http.Request) int { return http.StatusBadRequest })
	mail, chat := newApp(env, flaky.URL), newApp(env, refusing.URL)
	b := env.NewBrowser()
	idToken := mail.signIn(t, b, "alice", "correct horse battery")
	chat.signIn(t, b, "alice", "correct horse battery")
	sid := sessionsOf(t, env, alice.ID)[0]

	endSession(t, b, idToken)
	testenv.Eventually(t, "mail's logout delivered on the third attempt", func() bool { return len(outcomes(t, env, audit.TypeLogoutDelivered, sid)) == 1 })
	testenv.Eventually(t, "chat's refusal audited", func() bool { return len(outcomes(t, env, audit.TypeLogoutFailed, sid)) == 1 })
	got := flaky.received()
	if len(got) != 3 {
		t.Fatalf("the flaky client got %d requests, want 3 (500, 500, 200)", len(got))
	}
	verify(t, env, got[2], mail.client.ID, alice.ID, sid)
	if d := outcomes(t, env, audit.TypeLogoutDelivered, sid)[0]; d["attempts"] != 3.0 {
		t.Errorf("audited delivery %v: want 3 attempts", d)
	}
	if n := len(refusing.received()); n != 1 {
		t.Errorf("a client that answered 400 was sent %d requests, want 1 (a refusal is not retried)", n)
	}
	if d := outcomes(t, env, audit.TypeLogoutFailed, sid)[0]; d["client"] != chat.client.ID || d["attempts"] != 1.0 || !strings.Contains(d["reason"].(string), "400") {
		t.Errorf("audited failure %v", d)
	}
}

func TestSlowClientDoesNotDelaySignOut(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := env.CreateUserWithPassword("alice", "correct horse battery")
	arrived, release, answered := make(chan struct{}, 1), make(chan struct{}), make(chan struct{}, 1)
	slow := newReceiver(t, func(_ int, r *http.Request) int {
		select { // a retry (if Signet gave up) must not block here
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done(): // Signet gave up waiting
		}
		select {
		case answered <- struct{}{}:
		default:
		}
		return http.StatusOK
	})
	defer close(release) // never blocks the test's end
	mail := newApp(env, slow.URL)
	b := env.NewBrowser()
	idToken := mail.signIn(t, b, "alice", "correct horse battery")
	sid := sessionsOf(t, env, alice.ID)[0]

	endSession(t, b, idToken) // returns while the client may not even have been called
	select {
	case <-answered:
		t.Fatal("end_session answered only after the slow client's endpoint had returned")
	default:
	}
	<-arrived // the notice is on its way, and the client holds it
	select {
	case <-answered:
		t.Fatal("the slow client answered before it was released")
	default:
	}
	release <- struct{}{}
	<-answered
	testenv.Eventually(t, "the slow client's logout audited", func() bool { return len(outcomes(t, env, audit.TypeLogoutDelivered, sid)) == 1 })
}

func TestDiscoveryAdvertisesBackChannelLogout(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	resp, err := http.Get(env.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["backchannel_logout_supported"] != true || d["backchannel_logout_session_supported"] != true {
		t.Fatalf("discovery: backchannel_logout_supported %v, backchannel_logout_session_supported %v", d["backchannel_logout_supported"], d["backchannel_logout_session_supported"])
	}
}
