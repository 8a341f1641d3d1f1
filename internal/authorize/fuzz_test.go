package authorize

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
)

// FuzzParse feeds arbitrary queries to Parse for each kind of client. Parse must never panic, and
// whatever it returns must only ever point at a registered redirect URI (or, for a native client,
// a registered loopback URI on another port); a page refusal points nowhere.
func FuzzParse(f *testing.F) {
	for _, c := range []*store.Client{webClient(), spaClient(), nativeClient()} {
		f.Add(form(c).Encode())
	}
	f.Add("client_id=cli-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcallback&response_type=code&scope=openid&code_challenge=" + challenge + "&code_challenge_method=S256")
	f.Add("client_id=cli-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%40evil%2Fcallback&response_type=code&scope=openid")
	f.Add("client_id=web-app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%2F..%2Fevil&response_type=token&state=x")
	f.Add("client_id=web-app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code&scope=openid&prompt=none+login&max_age=-1&state=%00")
	f.Add("client_id=web-app&client_id=web-app&redirect_uri=x&request=y&response_mode=form_post")
	f.Fuzz(func(t *testing.T, query string) {
		form, _ := url.ParseQuery(query) // what did parse is still a request to check
		for _, c := range []*store.Client{webClient(), spaClient(), nativeClient(), nil} {
			req, ref := Parse(form, c)
			if (req == nil) == (ref == nil) {
				t.Fatalf("exactly one of request and refusal must be set: %+v %+v", req, ref)
			}
			if ref != nil {
				checkDescription(t, ref.Err.Description)
				if !ref.Redirect {
					if ref.To != (Delivery{}) || ref.State != "" {
						t.Fatalf("page refusal with a destination: %+v", ref)
					}
					continue
				}
				checkDestination(t, c, ref.To)
				checkDestination(t, c, Delivery{RedirectURI: ref.To.URL(ref.Params(issuer)), Mode: ref.To.Mode})
				continue
			}
			checkDestination(t, c, req.To)
			if !slices.Contains(req.Scope, "openid") {
				t.Fatalf("request without openid: %+v", req)
			}
			if public(c) && (req.CodeChallengeMethod != MethodS256 || len(req.CodeChallenge) != 43) {
				t.Fatalf("public client without S256 PKCE: %+v", req)
			}
		}
	})
}

// checkDestination fails unless d goes to one of c's registered URIs: exactly (a URL built from it
// starts with it and goes on with its query), or a native client's loopback URI on another port.
func checkDestination(t *testing.T, c *store.Client, d Delivery) {
	t.Helper()
	if c == nil {
		t.Fatalf("destination %q without a client", d.RedirectURI)
	}
	if d.Mode != ModeQuery && d.Mode != ModeFormPost {
		t.Fatalf("response mode %q", d.Mode)
	}
	for _, reg := range c.RedirectURIs {
		if d.RedirectURI == reg {
			return
		}
		if rest, ok := strings.CutPrefix(d.RedirectURI, reg); ok && (rest[0] == '?' || rest[0] == '&' || strings.HasSuffix(reg, "?")) {
			return
		}
		if c.Type != store.ClientNative {
			continue
		}
		if rh, rrest, ok := splitLoopback(reg); ok {
			base, _, _ := strings.Cut(d.RedirectURI, "?")
			regBase, _, _ := strings.Cut(rrest, "?")
			if uh, urest, ok := splitLoopback(base); ok && uh == rh && urest == regBase {
				return
			}
		}
	}
	t.Fatalf("client %s: destination %q is not a registered redirect URI", c.ID, d.RedirectURI)
}
