// Package authorize turns an authorization request (OIDC Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636)
// into a validated Request, or into a Refusal that says whether it may be sent to the client's
// redirect URI or must be shown on an error page (OIDC Core §3.1.2.6). It is pure: it serves no HTTP,
// reads and writes no store, renders no page. The authorization endpoint looks the client up, calls
// Parse, and then either continues to sign-in or delivers the refusal.
package authorize

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
)

// Response modes (OAuth 2.0 Multiple Response Type Encoding Practices, Form Post Response Mode).
const (
	ModeQuery    = "query"
	ModeFormPost = "form_post"
)

// Prompt values (OIDC Core §3.1.2.1).
const (
	PromptNone          = "none"
	PromptLogin         = "login"
	PromptConsent       = "consent"
	PromptSelectAccount = "select_account"
)

// MethodS256 is the only PKCE method accepted: plain shows the verifier to whoever sees the request.
const MethodS256 = "S256"

// maxValueBytes bounds every parameter this package reads. The request waits in the sign-in state
// while the user signs in, and its values reach logs and pages; 2 KiB is far above any real value.
// id_token_hint carries a whole ID token (whose nonce alone may be 2 KiB), so it may be larger.
const (
	maxValueBytes     = 2048
	maxIDTokenHintLen = 8192
)

// Delivery says where and how an authorization response (a code or an error) reaches the client.
type Delivery struct {
	// RedirectURI is the redirect_uri as sent, once it matched a registered one: exactly, or for a
	// native client's loopback URI, in everything but the port (RFC 8252 §7.3).
	RedirectURI string
	Mode        string // ModeQuery or ModeFormPost
}

// URL returns the redirect URI with params added to its query; a query the URI already has is kept
// (RFC 6749 §3.1.2). Used for ModeQuery; for ModeFormPost the params are the form's fields.
func (d Delivery) URL(params url.Values) string {
	sep := "?"
	if i := strings.IndexByte(d.RedirectURI, '?'); i >= 0 {
		sep = "&"
		if i == len(d.RedirectURI)-1 || strings.HasSuffix(d.RedirectURI, "&") {
			sep = ""
		}
	}
	return d.RedirectURI + sep + params.Encode()
}

// Request is a validated authorization request for the authorization code flow.
type Request struct {
	ClientID string
	To       Delivery
	// Scope holds each requested scope once, in the order sent; it always contains openid.
	Scope []string
	State string // "" when not sent
	Nonce string // optional in the code flow (OIDC Core §3.1.2.1); echoed in the ID token when sent
	// CodeChallenge is BASE64URL(SHA256(code_verifier)), and CodeChallengeMethod is MethodS256;
	// both are "" when a confidential client sent no challenge.
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string // each once; PromptNone only alone
	// MaxAge is the longest time since the user last authenticated that the client accepts; it
	// means something only when HasMaxAge (max_age=0 asks for a fresh sign-in).
	MaxAge    time.Duration
	HasMaxAge bool
	LoginHint string
	// IDTokenHint is kept as sent; the endpoint must verify it before trusting it.
	IDTokenHint string
	ACRValues   []string
	UILocales   []string
}

// Params returns the successful response's parameters (RFC 6749 §4.1.2): code, state when the
// request had one, and iss (RFC 9207) when issuer is not empty. Deliver them like a refusal's.
func (r *Request) Params(code, issuer string) url.Values {
	v := url.Values{"code": {code}}
	if r.State != "" {
		v.Set("state", r.State)
	}
	if issuer != "" {
		v.Set("iss", issuer)
	}
	return v
}

// HasPrompt reports whether the request asked for prompt value p.
func (r *Request) HasPrompt(p string) bool { return slices.Contains(r.Prompt, p) }

// Refusal is a refused authorization request.
type Refusal struct {
	// Err carries the code and the description; its Status is what an error page answers with.
	Err *oauth.Error
	// Redirect is false when the client or the redirect URI could not be validated: the refusal
	// must then be shown on an error page and never sent anywhere (OIDC Core §3.1.2.6). When true,
	// To is a validated redirect URI and its response mode.
	Redirect bool
	To       Delivery
	// State is the request's state, to send back with the error ("" when absent or unusable).
	State string
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Params returns the error response's parameters (RFC 6749 §4.1.2.1): error, error_description,
// state when the request had one, and iss (RFC 9207) when issuer is not empty. Deliver them with
// r.To.URL (query) or as the fields of an auto-submitting form (form_post). Only for r.Redirect.
func (r *Refusal) Params(issuer string) url.Values {
	v := url.Values{"error": {r.Err.Code}}
	if r.Err.Description != "" {
		v.Set("error_description", r.Err.Description)
	}
	if r.State != "" {
		v.Set("state", r.State)
	}
	if issuer != "" {
		v.Set("iss", issuer)
	}
	return v
}

// page is a refusal for the error page. A browser is not authenticating, so it is answered 400
// whatever the code (invalid_client's 401 would ask for credentials it cannot give).
func page(err *oauth.Error) *Refusal {
	err.Status = 400
	return &Refusal{Err: err}
}

// Parse validates an authorization request. form holds its parameters (the query of a GET, or the
// body of a POST; RFC 6749 §3.1: both at once would repeat them). client is the client that
// form's client_id names, or nil when there is none.
//
// The client and the redirect URI are checked first: until both are valid, every refusal is for an
// error page. After that, refusals are redirected with the request's state.
//
// Parameters sent empty count as absent (RFC 6749 §3.1). Each parameter read here may be sent
// once; others are ignored (resource, claims, display and extensions this server does not serve).
func Parse(form url.Values, client *store.Client) (*Request, *Refusal) {
	clientID, err := param(form, "client_id")
	switch {
	case err != nil:
		return nil, page(err)
	case clientID == "":
		return nil, page(oauth.InvalidRequest("client_id is missing: send the ID of a registered web, spa or native client"))
	case client == nil || client.ID != clientID:
		return nil, page(oauth.InvalidClient("unknown client '%s': no client has this ID", clip(clientID)))
	case client.Disabled:
		return nil, page(oauth.InvalidClient("client '%s' is disabled", clip(clientID)))
	}
	redirectURI, err := param(form, "redirect_uri")
	switch {
	case err != nil:
		return nil, page(err)
	case redirectURI == "":
		return nil, page(oauth.InvalidRequest("redirect_uri is missing: send one of the redirect URIs registered for client '%s'", clip(clientID)))
	}
	if err := matchRedirectURI(client, redirectURI); err != nil {
		return nil, page(err)
	}

	// From here on the redirect URI is trusted: refusals go back to the client.
	ref := &Refusal{Redirect: true, To: Delivery{RedirectURI: redirectURI, Mode: ModeQuery}}
	deny := func(err *oauth.Error) (*Request, *Refusal) { ref.Err = err; return nil, ref }

	state, err := param(form, "state")
	if err != nil {
		return deny(err)
	}
	if !printableASCII(state) {
		return deny(oauth.InvalidRequest("state must consist of printable ASCII characters (RFC 6749 Appendix A.5)"))
	}
	ref.State = state
	mode, err := param(form, "response_mode")
	switch {
	case err != nil:
		return deny(err)
	case mode == "" || mode == ModeQuery:
	case mode == ModeFormPost:
		ref.To.Mode = ModeFormPost
	default:
		return deny(oauth.InvalidRequest("response_mode '%s' is not supported; use query or form_post", clip(mode)))
	}

	// Request objects (OIDC Core §6) and dynamic registration would change what the request means;
	// say so instead of silently ignoring them.
	for _, name := range [...]string{"request", "request_uri", "registration"} {
		v, err := param(form, name)
		switch {
		case err != nil:
			return deny(err)
		case v == "":
		case name == "request":
			return deny(oauth.RequestNotSupported("request objects (the request parameter) are not supported; send the request's parameters directly"))
		case name == "request_uri":
			return deny(oauth.RequestURINotSupported("request_uri is not supported; send the request's parameters directly"))
		default:
			return deny(oauth.RegistrationNotSupported("the registration parameter is not supported: register the client with signet client create"))
		}
	}

	switch {
	case client.Type != store.ClientWeb && client.Type != store.ClientSPA && client.Type != store.ClientNative:
		return deny(oauth.UnauthorizedClient("client '%s' is of type %s; only web, spa and native clients sign users in", clip(clientID), clip(client.Type)))
	case !slices.Contains(client.GrantTypes, oauth.GrantAuthorizationCode):
		return deny(oauth.UnauthorizedClient("client '%s' may not use the authorization code flow; its allowed grants are: %s; allow it with `signet client update %s --add-grant authorization_code`",
			clip(clientID), grantList(client.GrantTypes), clip(clientID)))
	}

	responseType, err := param(form, "response_type")
	switch {
	case err != nil:
		return deny(err)
	case responseType == "":
		return deny(oauth.InvalidRequest("response_type is missing; send response_type=code"))
	case responseType != "code":
		return deny(oauth.UnsupportedResponseType("response_type '%s' is not supported; only code (the authorization code flow) is", clip(responseType)))
	}

	req := &Request{ClientID: clientID, To: ref.To, State: state}
	if req.Scope, err = scopes(form, client); err != nil {
		return deny(err)
	}
	if req.CodeChallenge, req.CodeChallengeMethod, err = pkce(form, client); err != nil {
		return deny(err)
	}
	if req.Prompt, err = prompt(form); err != nil {
		return deny(err)
	}
	maxAge, err := param(form, "max_age")
	if err != nil {
		return deny(err)
	}
	if maxAge != "" {
		if req.MaxAge, err = seconds(maxAge); err != nil {
			return deny(err)
		}
		req.HasMaxAge = true
	}
	for _, p := range [...]struct {
		name string
		into *string
	}{{"nonce", &req.Nonce}, {"login_hint", &req.LoginHint}, {"id_token_hint", &req.IDTokenHint}} {
		if *p.into, err = param(form, p.name); err != nil {
			return deny(err)
		}
	}
	for _, p := range [...]struct {
		name string
		into *[]string
	}{{"acr_values", &req.ACRValues}, {"ui_locales", &req.UILocales}} {
		v, err := param(form, p.name)
		if err != nil {
			return deny(err)
		}
		*p.into = fields(v)
	}
	return req, nil
}

// param returns a parameter's only value ("" when absent), refusing repetition (RFC 6749 §3.1),
// control characters, invalid UTF-8 and oversized values.
func param(form url.Values, name string) (string, *oauth.Error) {
	vs := form[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", oauth.InvalidRequest("parameter '%s' was sent more than once; send each parameter once", name)
	}
	v, limit := vs[0], maxValueBytes
	if name == "id_token_hint" {
		limit = maxIDTokenHintLen
	}
	if len(v) > limit {
		return "", oauth.InvalidRequest("parameter '%s' is %d bytes long; at most %d are accepted", name, len(v), limit)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", oauth.InvalidRequest("parameter '%s' contains control characters or is not valid UTF-8", name)
	}
	return v, nil
}

// scopes checks the scope parameter: openid is required (this endpoint signs users in) and always
// allowed; every other scope must be on the client's list when it has one.
func scopes(form url.Values, client *store.Client) ([]string, *oauth.Error) {
	v, err := param(form, "scope")
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, oauth.InvalidRequest("scope is missing; send openid and any other scopes the client needs")
	}
	list := fields(v)
	for _, s := range list {
		if !scopeToken(s) {
			return nil, oauth.InvalidScope("scope '%s' is malformed: scopes are printable ASCII separated by spaces (RFC 6749 section 3.3)", clip(s))
		}
	}
	if !slices.Contains(list, "openid") {
		return nil, oauth.InvalidScope("scope must include openid to sign a user in; this request asked for '%s'", clip(v))
	}
	if len(client.Scopes) > 0 {
		for _, s := range list {
			if s != "openid" && !slices.Contains(client.Scopes, s) {
				return nil, oauth.InvalidScope("scope '%s' is not allowed for client '%s'; allowed scopes: openid %s", clip(s), clip(client.ID), strings.Join(client.Scopes, " "))
			}
		}
	}
	return list, nil
}

// scopeToken reports RFC 6749 §3.3's scope-token syntax: %x21 / %x23-5B / %x5D-7E.
func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// public reports a client without credentials: it cannot prove at the token endpoint that it is
// the one that started the flow, so PKCE is what binds the code to it.
func public(c *store.Client) bool {
	return c.AuthMethod == store.AuthNone || c.Type == store.ClientSPA || c.Type == store.ClientNative
}

// pkce checks code_challenge and code_challenge_method (RFC 7636 §4.3): S256 only, required for
// public clients, optional for confidential ones (their code is bound by their credentials).
func pkce(form url.Values, client *store.Client) (challenge, method string, err *oauth.Error) {
	if challenge, err = param(form, "code_challenge"); err != nil {
		return "", "", err
	}
	if method, err = param(form, "code_challenge_method"); err != nil {
		return "", "", err
	}
	switch {
	case challenge == "" && method != "":
		return "", "", oauth.InvalidRequest("code_challenge_method was sent without code_challenge; send both")
	case challenge == "" && public(client):
		return "", "", oauth.InvalidRequest("client '%s' is a public client, so PKCE is required: send code_challenge=BASE64URL(SHA256(code_verifier)) and code_challenge_method=S256", clip(client.ID))
	case challenge == "":
		return "", "", nil
	case method == "":
		return "", "", oauth.InvalidRequest("code_challenge_method is missing, which means plain (RFC 7636 section 4.3), and plain is not accepted: send code_challenge_method=S256")
	case method == "plain":
		return "", "", oauth.InvalidRequest("code_challenge_method plain is not accepted: it exposes the verifier to whoever sees the request; send code_challenge_method=S256 with code_challenge=BASE64URL(SHA256(code_verifier))")
	case method != MethodS256:
		return "", "", oauth.InvalidRequest("code_challenge_method '%s' is not supported; use S256", clip(method))
	}
	// An S256 challenge is a SHA-256 hash in base64url without padding: exactly 43 characters. A
	// value that cannot be one would only fail later, at the token endpoint, with a vaguer error.
	if strings.HasSuffix(challenge, "=") {
		return "", "", oauth.InvalidRequest("code_challenge ends with '=': remove the base64 padding (RFC 7636 uses BASE64URL without padding)")
	}
	if strings.ContainsFunc(challenge, func(r rune) bool { return !base64URL(r) }) {
		return "", "", oauth.InvalidRequest("code_challenge contains a character outside A-Z a-z 0-9 - _; encode the SHA-256 hash with base64url, not base64")
	}
	if len(challenge) != 43 {
		return "", "", oauth.InvalidRequest("code_challenge must be BASE64URL(SHA256(code_verifier)) without padding, 43 characters long; this one is %d characters long", len(challenge))
	}
	return challenge, MethodS256, nil
}

func base64URL(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// prompt checks the prompt parameter (OIDC Core §3.1.2.1).
func prompt(form url.Values) ([]string, *oauth.Error) {
	v, err := param(form, "prompt")
	if err != nil {
		return nil, err
	}
	list := fields(v)
	for _, p := range list {
		switch p {
		case PromptNone, PromptLogin, PromptConsent, PromptSelectAccount:
		default:
			return nil, oauth.InvalidRequest("prompt value '%s' is not supported; use none, login, consent or select_account", clip(p))
		}
	}
	if len(list) > 1 && slices.Contains(list, PromptNone) {
		return nil, oauth.InvalidRequest("prompt none cannot be combined with other values (OIDC Core section 3.1.2.1); this request sent '%s'", clip(v))
	}
	return list, nil
}

// seconds parses max_age: a non-negative whole number of seconds. Values beyond what a Duration
// holds (292 years) mean no limit and are kept as the largest Duration.
func seconds(v string) (time.Duration, *oauth.Error) {
	if strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, oauth.InvalidRequest("max_age '%s' is not a whole number of seconds (0 or more)", clip(v))
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > uint64(maxDuration/time.Second) {
		return maxDuration, nil
	}
	return time.Duration(n) * time.Second, nil
}

const maxDuration = time.Duration(1<<63 - 1)

// fields splits a space-separated list, keeping each value once in the order sent.
func fields(v string) []string {
	var out []string
	for _, s := range strings.Split(v, " ") {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// printableASCII reports RFC 6749 Appendix A.5's state syntax: %x20-7E.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func grantList(g []string) string {
	if len(g) == 0 {
		return "(none)"
	}
	return strings.Join(g, ", ")
}

// clipBytes bounds a value echoed in a description.
const clipBytes = 64

// clip prepares a value sent by the caller for a description: at most 64 bytes, and every byte
// outside RFC 6749's error_description set (%x20-21 / %x23-5B / %x5D-7E, so no quote, backslash,
// control or non-ASCII byte) replaced with '?', so a description is safe in a URL, a page and a log.
func clip(v string) string {
	cut := len(v) > clipBytes
	if cut {
		v = v[:clipBytes]
	}
	b := []byte(v)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '?'
		}
	}
	if cut {
		b = append(b, "..."...)
	}
	return string(b)
}
