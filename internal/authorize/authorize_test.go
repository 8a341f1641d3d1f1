package authorize

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
)

const (
	issuer    = "https://id.example"
	challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 Appendix B
)

var codeGrants = []string{oauth.GrantAuthorizationCode, "refresh_token"}

func webClient() *store.Client {
	return &store.Client{ID: "web-app", Type: store.ClientWeb, AuthMethod: store.AuthSecretBasic,
		RedirectURIs: []string{"https://app.example/cb", "https://app.example/cb2?tenant=a"}, GrantTypes: codeGrants}
}

func spaClient() *store.Client {
	return &store.Client{ID: "spa-app", Type: store.ClientSPA, AuthMethod: store.AuthNone,
		RedirectURIs: []string{"https://spa.example/cb"}, GrantTypes: codeGrants}
}

func nativeClient() *store.Client {
	return &store.Client{ID: "cli-app", Type: store.ClientNative, AuthMethod: store.AuthNone,
		RedirectURIs: []string{"http://127.0.0.1/callback", "http://[::1]", "http://127.0.0.1:9000/fixed?x=1",
			"com.example.app:/oauth", "http://localhost:8765/cb", "https://127.0.0.1/secure"},
		GrantTypes: codeGrants}
}

// form is a valid request for c, changed by the key=value pairs in edits ("key=" deletes key,
// "+key=value" adds a second value).
func form(c *store.Client, edits ...string) url.Values {
	f := url.Values{"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURIs[0]},
		"scope": {"openid profile"}, "state": {"st-1"}}
	if c.AuthMethod == store.AuthNone {
		f.Set("code_challenge", challenge)
		f.Set("code_challenge_method", "S256")
	}
	for _, e := range edits {
		k, v, _ := strings.Cut(e, "=")
		switch {
		case strings.HasPrefix(k, "+"):
			f.Add(k[1:], v)
		case v == "":
			f.Del(k)
		default:
			f.Set(k, v)
		}
	}
	return f
}

func TestParseAcceptsAFullRequest(t *testing.T) {
	c := spaClient()
	f := form(c, "scope=openid profile openid email", "nonce=n-0S6", "prompt=login consent", "max_age=300",
		"login_hint=alice@example.com", "acr_values=urn:mfa urn:pwd", "ui_locales=de en", "response_mode=form_post",
		"id_token_hint=eyJ.x.y", "resource=https://api.example", "+resource=https://other.example", "display=page")
	req, ref := Parse(f, c)
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	want := Request{ClientID: "spa-app", To: Delivery{RedirectURI: "https://spa.example/cb", Mode: ModeFormPost},
		Scope: []string{"openid", "profile", "email"}, State: "st-1", Nonce: "n-0S6",
		CodeChallenge: challenge, CodeChallengeMethod: MethodS256, Prompt: []string{"login", "consent"},
		MaxAge: 300 * time.Second, HasMaxAge: true, LoginHint: "alice@example.com", IDTokenHint: "eyJ.x.y",
		ACRValues: []string{"urn:mfa", "urn:pwd"}, UILocales: []string{"de", "en"}}
	if got := *req; !equalRequest(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if !req.HasPrompt(PromptConsent) || req.HasPrompt(PromptNone) {
		t.Errorf("HasPrompt wrong for %v", req.Prompt)
	}
	p := req.Params("c0de", issuer)
	if want := (url.Values{"code": {"c0de"}, "state": {"st-1"}, "iss": {issuer}}); p.Encode() != want.Encode() {
		t.Errorf("params %v, want %v", p, want)
	}
	if got := req.To.URL(p); got != "https://spa.example/cb?code=c0de&iss=https%3A%2F%2Fid.example&state=st-1" {
		t.Errorf("URL %s", got)
	}
	if _, ref := Parse(form(c, "id_token_hint="+strings.Repeat("a", 5000)), c); ref != nil {
		t.Errorf("a 5000-byte id_token_hint refused: %v", ref)
	}
}

func equalRequest(a, b Request) bool {
	return a.ClientID == b.ClientID && a.To == b.To && slices.Equal(a.Scope, b.Scope) && a.State == b.State &&
		a.Nonce == b.Nonce && a.CodeChallenge == b.CodeChallenge && a.CodeChallengeMethod == b.CodeChallengeMethod &&
		slices.Equal(a.Prompt, b.Prompt) && a.MaxAge == b.MaxAge && a.HasMaxAge == b.HasMaxAge &&
		a.LoginHint == b.LoginHint && a.IDTokenHint == b.IDTokenHint &&
		slices.Equal(a.ACRValues, b.ACRValues) && slices.Equal(a.UILocales, b.UILocales)
}

func TestParseMinimalRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *store.Client
		f    url.Values
	}{
		{"confidential client without PKCE", webClient(), form(webClient())},
		{"confidential client with S256", webClient(), form(webClient(), "code_challenge="+challenge, "code_challenge_method=S256")},
		{"no state, no nonce", webClient(), form(webClient(), "state=")},
		{"empty parameters count as absent", webClient(), withEmpty(form(webClient()), "nonce", "prompt", "max_age", "response_mode", "code_challenge_method", "request")},
		{"registered URI with a query", webClient(), form(webClient(), "redirect_uri=https://app.example/cb2?tenant=a")},
		{"max_age=0 asks for a fresh sign-in", webClient(), form(webClient(), "max_age=0")},
		{"prompt=none alone", webClient(), form(webClient(), "prompt=none")},
		{"native custom scheme", nativeClient(), form(nativeClient(), "redirect_uri=com.example.app:/oauth")},
		{"openid is allowed even when the client lists scopes", scoped(), form(scoped(), "scope=openid email")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, ref := Parse(tc.f, tc.c)
			if ref != nil {
				t.Fatalf("refused: %v", ref)
			}
			if !slices.Contains(req.Scope, "openid") || req.To.RedirectURI != tc.f.Get("redirect_uri") || req.To.Mode != ModeQuery {
				t.Errorf("unexpected request %+v", req)
			}
			if tc.f.Get("max_age") == "0" && (!req.HasMaxAge || req.MaxAge != 0) {
				t.Errorf("max_age=0 lost: %+v", req)
			}
		})
	}
}

func withEmpty(f url.Values, names ...string) url.Values {
	for _, n := range names {
		f[n] = []string{""}
	}
	return f
}

func scoped() *store.Client {
	c := webClient()
	c.ID, c.Scopes = "scoped-app", []string{"profile", "email"}
	return c
}

func apiClient() *store.Client {
	c := webClient()
	c.ID, c.Type = "api-app", store.ClientAPI
	return c
}

// TestParseRefusals lists every rule: the code, a fragment of the description, and whether the
// refusal may be redirected (OIDC Core §3.1.2.6) or must be shown on an error page.
func TestParseRefusals(t *testing.T) {
	disabled := webClient()
	disabled.Disabled = true
	noGrant := webClient()
	noGrant.GrantTypes = []string{"refresh_token"}
	badReg := webClient()
	badReg.RedirectURIs = []string{"https://app.example/cb#frag", "/relative", "javascript:alert(1)", "https://u:p@app.example/cb", "https:///nohost"}
	long := strings.Repeat("a", maxValueBytes+1)

	const page, redirect = false, true
	for _, tc := range []struct {
		name     string
		c        *store.Client
		f        url.Values
		code     string
		desc     string
		redirect bool
	}{
		// The client and the redirect URI: never redirected.
		{"client_id missing", webClient(), form(webClient(), "client_id="), "invalid_request", "client_id is missing", page},
		{"client_id repeated", webClient(), form(webClient(), "+client_id=web-app"), "invalid_request", "'client_id' was sent more than once", page},
		{"unknown client", nil, form(webClient()), "invalid_client", "unknown client 'web-app'", page},
		{"client does not match client_id", spaClient(), form(webClient()), "invalid_client", "unknown client 'web-app'", page},
		{"disabled client", disabled, form(disabled), "invalid_client", "client 'web-app' is disabled", page},
		{"client_id with control characters", webClient(), form(webClient(), "client_id=web\napp"), "invalid_request", "'client_id' contains control characters", page},
		{"redirect_uri missing", webClient(), form(webClient(), "redirect_uri="), "invalid_request", "redirect_uri is missing", page},
		{"redirect_uri repeated", webClient(), form(webClient(), "+redirect_uri=https://app.example/cb"), "invalid_request", "'redirect_uri' was sent more than once", page},
		{"redirect_uri not registered", webClient(), form(webClient(), "redirect_uri=https://evil.example/cb"), "invalid_request", "redirect_uri 'https://evil.example/cb' is not registered for client 'web-app'", page},
		{"redirect_uri too long", webClient(), form(webClient(), "redirect_uri=https://app.example/"+long), "invalid_request", "'redirect_uri' is 2069 bytes long; at most 2048", page},
		{"localhost hint", nativeClient(), form(nativeClient(), "redirect_uri=http://localhost:9999/cb"), "invalid_request", "localhost URIs must match exactly", page},
		{"registered URI with a fragment", badReg, form(badReg, "redirect_uri=https://app.example/cb#frag"), "invalid_request", "cannot be used: it has a fragment", page},
		{"registered relative URI", badReg, form(badReg, "redirect_uri=/relative"), "invalid_request", "cannot be used: it is not an absolute URI", page},
		{"registered javascript URI", badReg, form(badReg, "redirect_uri=javascript:alert(1)"), "invalid_request", "cannot be used: its scheme is not allowed", page},
		{"registered URI with userinfo", badReg, form(badReg, "redirect_uri=https://u:p@app.example/cb"), "invalid_request", "cannot be used: it has userinfo", page},
		{"registered URI without host", badReg, form(badReg, "redirect_uri=https:///nohost"), "invalid_request", "cannot be used: it has no host", page},

		// Everything after a valid redirect URI: redirected with state.
		{"state repeated", webClient(), form(webClient(), "+state=2"), "invalid_request", "'state' was sent more than once", redirect},
		{"state not printable ASCII", webClient(), form(webClient(), "state=caf\u00e9"), "invalid_request", "state must consist of printable ASCII", redirect},
		{"response_mode fragment", webClient(), form(webClient(), "response_mode=fragment"), "invalid_request", "response_mode 'fragment' is not supported; use query or form_post", redirect},
		{"response_mode unknown", webClient(), form(webClient(), "response_mode=web_message"), "invalid_request", "response_mode 'web_message' is not supported", redirect},
		{"request object", webClient(), form(webClient(), "request=eyJhbGciOiJub25lIn0.e30."), "request_not_supported", "request objects (the request parameter) are not supported", redirect},
		{"request_uri", webClient(), form(webClient(), "request_uri=urn:ietf:params:oauth:request_uri:x"), "request_uri_not_supported", "request_uri is not supported", redirect},
		{"registration", webClient(), form(webClient(), "registration={}"), "registration_not_supported", "register the client with signet client create", redirect},
		{"api client", apiClient(), form(apiClient()), "unauthorized_client", "client 'api-app' is of type api; only web, spa and native", redirect},
		{"client without the code grant", noGrant, form(noGrant), "unauthorized_client", "allowed grants are: refresh_token; allow it with `signet client update web-app --add-grant authorization_code`", redirect},
		{"response_type missing", webClient(), form(webClient(), "response_type="), "invalid_request", "response_type is missing", redirect},
		{"response_type token", webClient(), form(webClient(), "response_type=token"), "unsupported_response_type", "response_type 'token' is not supported; only code", redirect},
		{"response_type hybrid", webClient(), form(webClient(), "response_type=code id_token"), "unsupported_response_type", "'code id_token' is not supported", redirect},
		{"response_type none", webClient(), form(webClient(), "response_type=none"), "unsupported_response_type", "'none' is not supported", redirect},
		{"response_type repeated", webClient(), form(webClient(), "+response_type=code"), "invalid_request", "'response_type' was sent more than once", redirect},
		{"scope missing", webClient(), form(webClient(), "scope="), "invalid_request", "scope is missing", redirect},
		{"scope without openid", webClient(), form(webClient(), "scope=profile email"), "invalid_scope", "scope must include openid to sign a user in; this request asked for 'profile email'", redirect},
		{"scope malformed", webClient(), form(webClient(), `scope=openid pro"file`), "invalid_scope", "scope 'pro?file' is malformed", redirect},
		{"scope not allowed", scoped(), form(scoped(), "scope=openid admin"), "invalid_scope", "scope 'admin' is not allowed for client 'scoped-app'; allowed scopes: openid profile email", redirect},
		{"public client without PKCE", spaClient(), form(spaClient(), "code_challenge=", "code_challenge_method="), "invalid_request", "client 'spa-app' is a public client, so PKCE is required", redirect},
		{"native client without PKCE", nativeClient(), form(nativeClient(), "code_challenge=", "code_challenge_method="), "invalid_request", "is a public client, so PKCE is required", redirect},
		{"method without challenge", webClient(), form(webClient(), "code_challenge_method=S256"), "invalid_request", "code_challenge_method was sent without code_challenge", redirect},
		{"method missing means plain", spaClient(), form(spaClient(), "code_challenge_method="), "invalid_request", "code_challenge_method is missing, which means plain", redirect},
		{"plain refused for public clients", spaClient(), form(spaClient(), "code_challenge_method=plain"), "invalid_request", "code_challenge_method plain is not accepted", redirect},
		{"plain refused for confidential clients", webClient(), form(webClient(), "code_challenge="+challenge, "code_challenge_method=plain"), "invalid_request", "code_challenge_method plain is not accepted", redirect},
		{"method unknown", spaClient(), form(spaClient(), "code_challenge_method=S512"), "invalid_request", "code_challenge_method 'S512' is not supported; use S256", redirect},
		{"method lower case", spaClient(), form(spaClient(), "code_challenge_method=s256"), "invalid_request", "code_challenge_method 's256' is not supported", redirect},
		{"challenge padded", spaClient(), form(spaClient(), "code_challenge="+challenge+"="), "invalid_request", "code_challenge ends with '='", redirect},
		{"challenge in base64, not base64url", spaClient(), form(spaClient(), "code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"), "invalid_request", "outside A-Z a-z 0-9 - _", redirect},
		{"challenge with a tilde (a verifier, not a hash)", spaClient(), form(spaClient(), "code_challenge="+strings.Repeat("a~", 22)), "invalid_request", "outside A-Z a-z 0-9 - _", redirect},
		{"challenge too short", spaClient(), form(spaClient(), "code_challenge="+challenge[:42]), "invalid_request", "43 characters long; this one is 42", redirect},
		{"challenge too long", spaClient(), form(spaClient(), "code_challenge="+strings.Repeat("A", 128)), "invalid_request", "this one is 128 characters long", redirect},
		{"prompt unknown", webClient(), form(webClient(), "prompt=create"), "invalid_request", "prompt value 'create' is not supported", redirect},
		{"prompt none with login", webClient(), form(webClient(), "prompt=none login"), "invalid_request", "prompt none cannot be combined with other values (OIDC Core section 3.1.2.1); this request sent 'none login'", redirect},
		{"max_age negative", webClient(), form(webClient(), "max_age=-1"), "invalid_request", "max_age '-1' is not a whole number of seconds", redirect},
		{"max_age fraction", webClient(), form(webClient(), "max_age=1.5"), "invalid_request", "max_age '1.5' is not a whole number", redirect},
		{"max_age with sign", webClient(), form(webClient(), "max_age=+5"), "invalid_request", "max_age '+5' is not", redirect},
		{"nonce too long", webClient(), form(webClient(), "nonce="+long), "invalid_request", "'nonce' is 2049 bytes long", redirect},
		{"nonce repeated", webClient(), form(webClient(), "nonce=a", "+nonce=b"), "invalid_request", "'nonce' was sent more than once", redirect},
		{"id_token_hint too long", webClient(), form(webClient(), "id_token_hint="+strings.Repeat("a", maxIDTokenHintLen+1)), "invalid_request", "'id_token_hint' is 8193 bytes long; at most 8192", redirect},
		{"login_hint with a NUL", webClient(), form(webClient(), "login_hint=a\x00b"), "invalid_request", "'login_hint' contains control characters", redirect},
		{"ui_locales invalid UTF-8", webClient(), form(webClient(), "ui_locales=\xff"), "invalid_request", "'ui_locales' contains control characters or is not valid UTF-8", redirect},
		{"acr_values repeated", webClient(), form(webClient(), "acr_values=a", "+acr_values=b"), "invalid_request", "'acr_values' was sent more than once", redirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, ref := Parse(tc.f, tc.c)
			if ref == nil {
				t.Fatalf("accepted: %+v", req)
			}
			if req != nil {
				t.Errorf("both a request and a refusal")
			}
			if ref.Err.Code != tc.code || !strings.Contains(ref.Err.Description, tc.desc) {
				t.Errorf("got %s %q\nwant %s containing %q", ref.Err.Code, ref.Err.Description, tc.code, tc.desc)
			}
			if ref.Err.Status != 400 {
				t.Errorf("status %d, want 400", ref.Err.Status)
			}
			checkDescription(t, ref.Err.Description)
			if ref.Redirect != tc.redirect {
				t.Fatalf("Redirect = %v, want %v", ref.Redirect, tc.redirect)
			}
			if !ref.Redirect {
				if ref.To != (Delivery{}) || ref.State != "" {
					t.Errorf("a page refusal carries a destination: %+v", ref)
				}
				return
			}
			if ref.To.RedirectURI != tc.f.Get("redirect_uri") {
				t.Errorf("redirected to %q", ref.To.RedirectURI)
			}
			wantState := tc.f.Get("state")
			if len(tc.f["state"]) > 1 || !printableASCII(wantState) {
				wantState = ""
			}
			if ref.State != wantState {
				t.Errorf("state %q, want %q", ref.State, wantState)
			}
		})
	}
}

// checkDescription holds descriptions to RFC 6749 §4.1.2.1's error_description characters.
func checkDescription(t *testing.T, d string) {
	t.Helper()
	for _, r := range d {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Errorf("description has %q outside RFC 6749's set: %s", r, d)
			return
		}
	}
}

func TestResponseModeCarriesTheRefusal(t *testing.T) {
	c := webClient()
	_, ref := Parse(form(c, "response_mode=form_post", "response_type=token"), c)
	if ref == nil || !ref.Redirect || ref.To.Mode != ModeFormPost {
		t.Fatalf("refusal %+v", ref)
	}
	_, ref = Parse(form(c, "response_mode=fragment"), c)
	if ref == nil || ref.To.Mode != ModeQuery {
		t.Fatalf("an unsupported response_mode must be answered in the default mode: %+v", ref)
	}
}

func TestRefusalParamsAndURL(t *testing.T) {
	c := webClient()
	_, ref := Parse(form(c, "redirect_uri=https://app.example/cb2?tenant=a", "state=a b&c", "response_type=token"), c)
	if ref == nil {
		t.Fatal("accepted")
	}
	p := ref.Params(issuer)
	want := url.Values{"error": {"unsupported_response_type"}, "error_description": {ref.Err.Description},
		"state": {"a b&c"}, "iss": {issuer}}
	if p.Encode() != want.Encode() {
		t.Errorf("params %v, want %v", p, want)
	}
	got := ref.To.URL(p)
	if !strings.HasPrefix(got, "https://app.example/cb2?tenant=a&") {
		t.Fatalf("URL %s does not keep the registered query", got)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("tenant") != "a" || q.Get("state") != "a b&c" || q.Get("iss") != issuer || q.Get("error") != "unsupported_response_type" {
		t.Errorf("query %v", q)
	}

	for uri, prefix := range map[string]string{
		"https://app.example/cb":    "https://app.example/cb?error=",
		"https://app.example/cb?":   "https://app.example/cb?error=",
		"https://app.example/cb?a&": "https://app.example/cb?a&error=",
	} {
		if got := (Delivery{RedirectURI: uri}).URL(url.Values{"error": {"x"}}); !strings.HasPrefix(got, prefix) {
			t.Errorf("URL(%q) = %q", uri, got)
		}
	}
	if p := (&Refusal{Err: oauth.InvalidRequest("x")}).Params(""); p.Has("state") || p.Has("iss") {
		t.Errorf("absent state and issuer sent: %v", p)
	}
}

// TestOpenRedirectAttempts: a URI that differs from the registered https://app.example/cb in any
// way is refused on the error page, never redirected to.
func TestOpenRedirectAttempts(t *testing.T) {
	for _, c := range []*store.Client{webClient(), spaClient(), nativeClient()} {
		c.RedirectURIs = append([]string{"https://app.example/cb"}, c.RedirectURIs...)
		for _, uri := range []string{
			"https://app.example/cb/../evil",
			"https://app.example/cb/",
			"https://app.example/cb?x=1",
			"https://app.example/cb?",
			"https://app.example/cb#",
			"https://app.example/cb#x",
			"https://app.example.evil/cb",
			"https://app.example@evil/cb",
			"https://evil@app.example/cb",
			"https://app.example:443/cb",
			"https://APP.example/cb",
			"HTTPS://app.example/cb",
			"https://app.example/CB",
			"https://app.example/%63b",
			"http://app.example/cb",
			"https://app.example/cb ",
			" https://app.example/cb",
			"https://app.example\\@evil/cb",
			"//evil/cb",
			"https://app.example/cbx",
			"https://app.example/c",
			"https://app.example/cb%23x",
			"https://app.example/cb;x",
			"http://127.0.0.1:8080/cb",
		} {
			t.Run(c.ID+" "+uri, func(t *testing.T) {
				f := form(c, "response_type=token") // a second error: it must not be the one sent
				f.Set("redirect_uri", uri)
				_, ref := Parse(f, c)
				if ref == nil || ref.Redirect || ref.To.RedirectURI != "" {
					t.Fatalf("not refused on a page: %+v", ref)
				}
				if ref.Err.Code != oauth.CodeInvalidRequest || !strings.Contains(ref.Err.Description, "is not registered for client") {
					t.Errorf("got %s %q", ref.Err.Code, ref.Err.Description)
				}
			})
		}
	}
}

// TestLoopbackRedirectURIs: RFC 8252 §7.3 for native clients only; every other part must match.
func TestLoopbackRedirectURIs(t *testing.T) {
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:1/callback", true},
		{"http://127.0.0.1:51234/callback", true},
		{"http://127.0.0.1:65535/callback", true},
		{"http://[::1]", true},
		{"http://[::1]:8080", true},
		{"http://127.0.0.1:9000/fixed?x=1", true},
		{"http://127.0.0.1:9001/fixed?x=1", true},
		{"http://127.0.0.1/fixed?x=1", true},
		{"http://127.0.0.1:65536/callback", false},
		{"http://127.0.0.1:0/callback", false},
		{"http://127.0.0.1:08080/callback", false},
		{"http://127.0.0.1:/callback", false},
		{"http://127.0.0.1:123456/callback", false},
		{"http://127.0.0.1:8080/callback/", false},
		{"http://127.0.0.1:8080/Callback", false},
		{"http://127.0.0.1:8080/callback?x=1", false},
		{"http://127.0.0.1:8080/callback#x", false},
		{"http://127.0.0.1:8080", false},
		{"http://[::1]:8080/", false},
		{"http://[::1]:8080/callback", false},
		{"http://[0:0:0:0:0:0:0:1]:8080", false},
		{"http://[::1]/callback", false},
		{"http://127.0.0.1:9000/fixed", false},
		{"http://127.0.0.1:9000/fixed?x=2", false},
		{"http://127.0.0.2:8080/callback", false},
		{"http://127.1:8080/callback", false},
		{"http://2130706433:8080/callback", false},
		{"http://127.0.0.1:8080@evil.example/callback", false},
		{"http://127.0.0.1:8080\\@evil.example/callback", false},
		{"http://user@127.0.0.1:8080/callback", false},
		{"http://127.0.0.1.evil.example:8080/callback", false},
		{"https://127.0.0.1:8443/callback", false},
		{"https://127.0.0.1:8443/secure", false},
		{"https://127.0.0.1/secure", true}, // registered exactly
		{"http://localhost:8765/cb", true}, // registered exactly
		{"http://localhost:8766/cb", false},
		{"http://localhost/cb", false},
		{"com.example.app:/oauth", true},
		{"com.example.app:/oauth2", false},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			c := nativeClient()
			req, ref := Parse(form(c, "redirect_uri="+tc.uri), c)
			if tc.ok {
				if ref != nil {
					t.Fatalf("refused: %v", ref)
				}
				if req.To.RedirectURI != tc.uri {
					t.Errorf("redirect URI %q, want the one sent", req.To.RedirectURI)
				}
				return
			}
			if ref == nil || ref.Redirect {
				t.Fatalf("not refused on a page: %+v %+v", req, ref)
			}
		})
	}
	// A web or SPA client registering a loopback URI gets no port leeway.
	for _, c := range []*store.Client{webClient(), spaClient()} {
		c.RedirectURIs = []string{"http://127.0.0.1:8080/cb"}
		if _, ref := Parse(form(c), c); ref != nil {
			t.Errorf("%s: exact loopback URI refused: %v", c.ID, ref)
		}
		if _, ref := Parse(form(c, "redirect_uri=http://127.0.0.1:8081/cb"), c); ref == nil || ref.Redirect {
			t.Errorf("%s: another port accepted: %+v", c.ID, ref)
		}
	}
}

func TestMaxAgeBeyondDurationMeansNoLimit(t *testing.T) {
	c := webClient()
	for _, v := range []string{"9223372037", "99999999999999999999999"} {
		req, ref := Parse(form(c, "max_age="+v), c)
		if ref != nil || !req.HasMaxAge || req.MaxAge != maxDuration {
			t.Errorf("max_age=%s: %+v %v", v, req, ref)
		}
	}
}

func TestClipKeepsDescriptionsSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		`a"b\c`:                   "a?b?c",
		"caf\u00e9\n":             "caf???",
		strings.Repeat("x", 65):   strings.Repeat("x", 64) + "...",
		"<script>alert(1)</scri>": "<script>alert(1)</scri>", // html/template escapes on the page
	} {
		if got := clip(in); got != want {
			t.Errorf("clip(%q) = %q, want %q", in, got, want)
		}
	}
}
