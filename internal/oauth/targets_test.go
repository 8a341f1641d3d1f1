package oauth_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// postValues sends a token request whose form may repeat parameters, with Basic credentials.
func postValues(t *testing.T, env *testenv.Env, c testenv.Client, form url.Values) (int, map[string]any) {
	t.Helper()
	body := form.Encode()
	resp := env.Do("/oauth/v2/token", nil, func(r *http.Request) {
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		r.SetBasicAuth(c.ID, c.Secret)
	})
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token endpoint answered non-JSON: %v", err)
	}
	return resp.StatusCode, out
}

// audienceOf decodes the aud claim of a JWT access token, without verifying it (the token
// endpoint just issued it).
func audienceOf(t *testing.T, raw string) []string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40s…", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Aud any }
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	switch aud := claims.Aud.(type) {
	case string:
		return []string{aud}
	case []any:
		out := make([]string, len(aud))
		for i, a := range aud {
			out[i], _ = a.(string)
		}
		return out
	}
	t.Fatalf("aud %v", claims.Aud)
	return nil
}

// TestTargetsAreDeduplicatedAndCapped: repeated audience and resource values give a token that
// names each audience once, through client credentials and token exchange alike; more than 10
// distinct values, or a value over 512 bytes, is refused with invalid_target before any other check.
func TestTargetsAreDeduplicatedAndCapped(t *testing.T) {
	x := newXEnv(t)
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = fmt.Sprintf("https://api%d.example", i)
	}
	svc := x.CreateClient(store.Client{Audiences: append([]string{x.api.ID}, ten...)})
	clientCredentials := func(targets url.Values) url.Values {
		targets.Set("grant_type", "client_credentials")
		return targets
	}
	delegation := func(targets url.Values) url.Values {
		targets.Set("grant_type", grantTE)
		targets.Set("subject_token", x.danaToken)
		targets.Set("subject_token_type", typeAT)
		targets.Set("actor_token", x.agentToken)
		targets.Set("actor_token_type", typeAT)
		return targets
	}
	repeated := func(name, value string, n int) url.Values {
		v := url.Values{}
		for range n {
			v.Add(name, value)
		}
		return v
	}
	distinct := func(n int) url.Values {
		v := url.Values{}
		for i := range n {
			v.Add("audience", fmt.Sprintf("https://api%d.example", i))
			v.Add("resource", fmt.Sprintf("https://api%d.example", i)) // the same value again: counts once
		}
		return v
	}

	accepted := []struct {
		name   string
		client testenv.Client
		form   url.Values
		want   []string
	}{
		{"1,900 copies of one audience, exchanged", x.agentApp, delegation(repeated("audience", x.api.ID, 1900)), []string{x.api.ID}},
		{"1,900 copies of one resource, exchanged", x.agentApp, delegation(repeated("resource", x.api.ID, 1900)), []string{x.api.ID}},
		{"1,900 copies of one audience, client credentials", svc, clientCredentials(repeated("audience", x.api.ID, 1900)), []string{svc.ID, x.api.ID}},
		{"10 distinct values, each sent twice", svc, clientCredentials(distinct(10)), append([]string{svc.ID}, ten...)},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			code, body := postValues(t, x.Env, c.client, c.form)
			if code != http.StatusOK {
				t.Fatalf("%d %v", code, body)
			}
			if aud := audienceOf(t, body["access_token"].(string)); !slices.Equal(aud, c.want) {
				if len(aud) > 5 {
					aud = append(aud[:5], fmt.Sprintf("… %d in all", len(aud)))
				}
				t.Fatalf("token audience %q, want %q", aud, c.want)
			}
		})
	}

	const tooMany = "send at most 10 distinct audience and resource values; this request sent 11"
	long := "https://api.example/" + strings.Repeat("a", 493) // 513 bytes
	const tooLong = "audience and resource values may be at most 512 bytes long; this request sent one of 513 bytes"
	refused := []struct {
		name   string
		client testenv.Client
		form   url.Values
		want   string
	}{
		{"11 distinct values, client credentials", svc, clientCredentials(distinct(11)), tooMany},
		{"11 distinct values, exchanged", x.agentApp, delegation(distinct(11)), tooMany},
		{"a 513-byte audience, client credentials", svc, clientCredentials(url.Values{"audience": {long}}), tooLong},
		{"a 513-byte resource, exchanged", x.agentApp, delegation(url.Values{"resource": {long}}), tooLong},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			code, body := postValues(t, x.Env, c.client, c.form)
			if code != http.StatusBadRequest || body["error"] != "invalid_target" || body["error_description"] != c.want {
				t.Fatalf("%d %v\nwant 400 invalid_target %q", code, body, c.want)
			}
		})
	}
}
