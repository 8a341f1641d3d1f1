package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// FuzzTokenEndpoint sends arbitrary bodies and Authorization headers to the token endpoint: the
// answer is always a JSON token or a JSON OAuth error below 500, never a panic.
func FuzzTokenEndpoint(f *testing.F) {
	env := testenv.Start(f, testenv.Options{})
	c := env.CreateClient(store.Client{GrantTypes: []string{"client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"}})
	h := env.Server.Handler()
	f.Add("grant_type=client_credentials", "Basic "+basic(c.ID, c.Secret))
	f.Add("grant_type=refresh_token&refresh_token=sgn_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&scope=a%20b", "Basic "+basic(c.ID, c.Secret))
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&actor_token=x&actor_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token", "Basic "+basic(c.ID, c.Secret))
	f.Add("grant_type=client_credentials&client_id="+c.ID+"&client_secret="+c.Secret, "")
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c", "")
	f.Add("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.e30.", "")
	f.Add("grant_type=%zz&grant_type=x", "Bearer x")
	f.Add("scope=%00%ff&audience=a&audience=b&resource=c", "Basic Og==")
	f.Fuzz(func(t *testing.T, body, authz string) {
		req := httptest.NewRequest(http.MethodPost, "/oauth/v2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			req.Header["Authorization"] = []string{authz}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkOAuthResponse(t, rec)
	})
}

// FuzzIntrospect introspects arbitrary token strings: the answer is {"active":false} unless the
// fuzzer forged a valid token, and never an error.
func FuzzIntrospect(f *testing.F) {
	env := testenv.Start(f, testenv.Options{})
	c := env.CreateClient(store.Client{})
	h := env.Server.Handler()
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ.e30.AAAA")
	f.Add("sgn_at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("sgn_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("a.b.c.d.e")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		form := "token=" + urlEscape(token)
		req := httptest.NewRequest(http.MethodPost, "/oauth/v2/introspect", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.ID, c.Secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkOAuthResponse(t, rec)
		if token != "" && rec.Code == 200 && rec.Body.String() != `{"active":false}` {
			t.Fatalf("fuzzed token %q reported %s", token, rec.Body)
		}
	})
}

func checkOAuthResponse(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("non-JSON answer %q", rec.Body)
	}
	if rec.Code >= 400 {
		if e, _ := m["error"].(string); e == "" {
			t.Fatalf("error response without error code: %s", rec.Body)
		}
		if d, _ := m["error_description"].(string); d == "" {
			t.Fatalf("error response without description: %s", rec.Body)
		}
	}
}
