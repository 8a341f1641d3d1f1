package authorize

import (
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
)

// TestCheckRedirectURIByClientType: what `signet client create --redirect-uri` accepts is what the
// authorization endpoint can send a response to, by the kind of client.
func TestCheckRedirectURIByClientType(t *testing.T) {
	for _, c := range []struct {
		typ, uri string
		refused  string // "" when accepted
	}{
		{store.ClientWeb, "https://app.example.com/callback", ""},
		{store.ClientWeb, "https://app.example.com/cb?tenant=1", ""},
		{store.ClientWeb, "http://localhost:3000/callback", ""},
		{store.ClientWeb, "http://127.0.0.1:8080/cb", ""},
		{store.ClientSPA, "http://[::1]:5173/", ""},
		{store.ClientWeb, "http://app.example.com/callback", "must use https"},
		{store.ClientSPA, "com.example.app:/cb", "must use https"},
		{store.ClientWeb, "https://app.example.com/cb#frag", "fragment"},
		{store.ClientWeb, "https://user:pw@app.example.com/cb", "userinfo"},
		{store.ClientWeb, "/callback", "not an absolute URI"},
		{store.ClientWeb, "https:///cb", "no host"},
		{store.ClientNative, "com.example.app:/oauth2redirect", ""},
		{store.ClientNative, "http://127.0.0.1/callback", ""},
		{store.ClientNative, "https://app.example.com/native-cb", ""},
		{store.ClientNative, "http://app.example.com/callback", "loopback"},
		{store.ClientNative, "javascript:alert(1)", "scheme is not allowed"},
		{store.ClientAPI, "https://app.example.com/callback", "no redirect URIs"},
	} {
		err := CheckRedirectURI(c.typ, c.uri)
		switch {
		case c.refused == "" && err != nil:
			t.Errorf("%s %s refused: %v", c.typ, c.uri, err)
		case c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)):
			t.Errorf("%s %s: got %v, want a refusal saying %q", c.typ, c.uri, err, c.refused)
		}
	}
}
