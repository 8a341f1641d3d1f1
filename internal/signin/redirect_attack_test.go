package signin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/testenv"
)

// hostileURIs are redirect targets an attacker would try: scheme-relative and backslash tricks
// browsers resolve to another host, other schemes, encodings, and the registered URI changed.
var hostileURIs = []string{
	"//evil.example/", "/\\evil.example/", "\\\\evil.example", "https:evil.example", "https://evil.example/callback",
	"javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "%2F%2Fevil.example", "/%2F%2Fevil.example",
	"/%5Cevil.example", " //evil.example", "/\t/evil.example", "http://127.0.0.1:9@evil.example/callback",
	callback + "?extra=1", callback + "#frag", callback + "/more", callback + "/../evil", strings.ToUpper(callback),
	"http://127.0.0.1:9/callback%2F..%2Fevil", "http://127.0.0.1:9/Callback", "http://127.0.0.1:10/callback", callback + "\x00",
}

// offIssuer reports why a Location header would take a browser off the issuer ("" when it stays).
func offIssuer(issuer, loc string) string {
	if strings.Contains(loc, "\\") || strings.ContainsAny(loc, "\t\r\n") {
		return "contains a backslash or control character browsers rewrite"
	}
	if strings.HasPrefix(loc, "//") {
		return "scheme-relative"
	}
	base, _ := url.Parse(issuer + "/")
	u, err := base.Parse(loc)
	if err != nil {
		return "unparseable"
	}
	if u.Scheme+"://"+u.Host != base.Scheme+"://"+base.Host {
		return "another origin: " + u.Scheme + "://" + u.Host
	}
	return ""
}

// TestAttackOpenRedirectAuthorize: hostile redirect_uri values at the authorization endpoint,
// in a fresh browser and in a signed-in one (which would get a code at once). What would break:
// Signet as an open redirector, or a code sent to an attacker's URI. Signet compares the
// redirect URI exactly with the client's registered list before using it; anything else gets an
// error page (400) and no Location.
func TestAttackOpenRedirectAuthorize(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	signedIn := x.NewBrowser()
	x.signIn(t, signedIn)
	for _, b := range []*testenv.Browser{x.NewBrowser(), signedIn} {
		for _, uri := range hostileURIs {
			for _, extra := range []string{"", "&prompt=none", "&scope=openid+nonsense&response_type=token"} {
				q := url.Values{"client_id": {x.rp.client.ID}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"},
					"redirect_uri": {uri}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
				resp := raw(t, b, http.MethodGet, "/oauth/v2/authorize?"+q.Encode()+extra, nil)
				if loc := resp.Header.Get("Location"); loc != "" {
					t.Errorf("redirect_uri %q%s: redirected to %q", uri, extra, loc)
				} else if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("redirect_uri %q%s: status %d, want 400", uri, extra, resp.StatusCode)
				}
			}
		}
	}
	// An error for a valid redirect URI goes exactly there (and only there).
	q := url.Values{"client_id": {x.rp.client.ID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {callback}, "prompt": {"none"}}
	resp := raw(t, x.NewBrowser(), http.MethodGet, "/oauth/v2/authorize?"+q.Encode(), nil)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, callback+"?") {
		t.Errorf("error for a registered redirect URI went to %q", loc)
	}
}

// TestAttackOpenRedirectEndSession: hostile post_logout_redirect_uri values, with client_id and
// with an id_token_hint. What would break: a logout link that sends the browser anywhere. Signet
// only redirects to a URI the client registered for logout, exactly; otherwise an error page.
func TestAttackOpenRedirectEndSession(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	code, verifier := x.signIn(t, b)
	_, _, idt := x.tokens(t, code, verifier)
	for _, uri := range append(hostileURIs, "http://127.0.0.1:9/bye?x=1", "http://127.0.0.1:9/bye#f", "http://127.0.0.1:9/bye/", callback) {
		for _, q := range []url.Values{
			{"client_id": {x.rp.client.ID}, "post_logout_redirect_uri": {uri}},
			{"id_token_hint": {idt}, "post_logout_redirect_uri": {uri}},
			{"post_logout_redirect_uri": {uri}},
		} {
			resp := raw(t, b, http.MethodGet, "/oidc/v1/end_session?"+q.Encode(), nil)
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("end_session %v: redirected to %q", q, loc)
			}
		}
	}
	if !signedInAccount(t, b) {
		t.Error("a refused end_session signed the browser out")
	}
}

// TestAttackOpenRedirectReturnTo: /ui/login/?return_to= with hostile values, for a browser
// already signed in (redirected at once) and one that signs in first. What would break: Signet's
// own sign-in page bouncing users to a phishing site. Signet keeps return_to only when it is a
// path on the issuer (not // or /\), otherwise it goes to the account page.
func TestAttackOpenRedirectReturnTo(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	signedIn := x.NewBrowser()
	x.signIn(t, signedIn)
	for _, target := range append(hostileURIs, "/ui/account/..//evil.example", "/.//evil.example", "///evil.example", "/%09/evil.example") {
		path := "/ui/login/?return_to=" + url.QueryEscape(target)
		resp := raw(t, signedIn, http.MethodGet, path, nil)
		if why := offIssuer(x.URL, resp.Header.Get("Location")); resp.StatusCode/100 != 3 || why != "" {
			t.Errorf("signed in, return_to %q: %d to %q (%s)", target, resp.StatusCode, resp.Header.Get("Location"), why)
		}
		// A browser that signs in first.
		b := x.NewBrowser()
		p := b.Open(path)
		f := p.Form(t, "/ui/login/password")
		f.Values.Set("username", "alice")
		f.Values.Set("password", alicePassword)
		resp = raw(t, b, http.MethodPost, f.Action, f.Values)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("password post: %d", resp.StatusCode)
		}
		resp = raw(t, b, http.MethodGet, resp.Header.Get("Location"), nil)
		if why := offIssuer(x.URL, resp.Header.Get("Location")); resp.StatusCode/100 != 3 || why != "" {
			t.Errorf("after sign-in, return_to %q: %d to %q (%s)", target, resp.StatusCode, resp.Header.Get("Location"), why)
		}
	}
	// Account redirects (sign in first; after an action) stay on the issuer.
	for _, path := range []string{"/ui/account", "/ui/account/password", "/ui/account/totp"} {
		resp := raw(t, x.NewBrowser(), http.MethodGet, path, nil)
		if why := offIssuer(x.URL, resp.Header.Get("Location")); resp.StatusCode/100 != 3 || why != "" {
			t.Errorf("GET %s signed out: %d to %q (%s)", path, resp.StatusCode, resp.Header.Get("Location"), why)
		}
	}
}

// TestAttackMixUp (RFC 9207): a client talking to several providers must learn which one
// answered. What would break: an attacker's provider's answer taken for Signet's. Every
// authorization response, success or error, query or form_post, carries iss equal to the issuer
// exactly.
func TestAttackMixUp(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	x.signIn(t, b) // iss on the success redirect is checked by signIn's caller below too
	u, _ := x.authURL("s")
	p := b.Open(u)
	if p.Location == nil || p.Location.Query().Get("iss") != x.URL || p.Location.Query().Get("code") == "" {
		t.Errorf("success redirect %v: want iss %q", p.Location, x.URL)
	}
	u, _ = x.authURL("s", oauth2.SetAuthURLParam("prompt", "none"))
	p = x.NewBrowser().Open(u)
	if p.Location == nil || p.Location.Query().Get("error") != "login_required" || p.Location.Query().Get("iss") != x.URL {
		t.Errorf("error redirect %v: want login_required with iss %q", p.Location, x.URL)
	}
	u, _ = x.authURL("s", oauth2.SetAuthURLParam("prompt", "none login"))
	p = x.NewBrowser().Open(u)
	if p.Location == nil || p.Location.Query().Get("error") == "" || p.Location.Query().Get("iss") != x.URL {
		t.Errorf("parameter error redirect %v: want an error with iss %q", p.Location, x.URL)
	}
	for _, bb := range []*testenv.Browser{b, x.NewBrowser()} {
		u, _ = x.authURL("s", oauth2.SetAuthURLParam("response_mode", "form_post"), oauth2.SetAuthURLParam("prompt", "none"))
		p = bb.Open(u)
		f := p.Form(t, callback)
		if f.Values.Get("iss") != x.URL || f.Values.Get("code")+f.Values.Get("error") == "" {
			t.Errorf("form_post fields %v: want iss %q", f.Values, x.URL)
		}
	}
}
