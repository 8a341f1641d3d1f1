package oauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/tokens"
)

const typeID = "urn:ietf:params:oauth:token-type:id_token"

// idToken signs an ID token about user for client, as sign-in at that client would, with the scope
// that sign-in granted (read write).
func (x *xenv) idToken(t *testing.T, user, client string, ttl time.Duration) string {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	raw, err := x.Server.Tokens.IssueIDToken(&tokens.Access{Subject: user, ClientID: client, Scope: []string{"read", "write"}, IssuedAt: now, ExpiresAt: now.Add(ttl)}, "ES256", nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestIDTokenAsSubject: the client a user signed in to may send the user's ID token as the subject
// of a delegation; the ID token bounds the lifetime, the rule bounds the scope, and only that client
// may use it.
func TestIDTokenAsSubject(t *testing.T) {
	x := newXEnv(t)
	id := x.idToken(t, x.dana.ID, x.agentApp.ID, 20*time.Minute)
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": id, "subject_token_type": typeID,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	if code != 200 {
		t.Fatalf("delegation from an ID token refused: %v", body)
	}
	got := x.introspect(t, body["access_token"].(string))
	act, _ := got["act"].(map[string]any)
	if got["active"] != true || got["sub"] != x.dana.ID || act["sub"] != x.agent.ID || got["scope"] != "read" {
		t.Fatalf("delegated token: %v", got)
	}
	if exp := int64(got["exp"].(float64)); exp > time.Now().Add(20*time.Minute+time.Second).Unix() {
		t.Fatalf("the delegated token (exp %d) outlives the ID token it came from", exp)
	}

	forgedID := func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "attacker"))
		b, _ := json.Marshal(map[string]any{"iss": x.URL, "sub": x.olga.ID, "aud": []string{x.agentApp.ID}, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "f1"})
		jws, _ := s.Sign(b)
		out, _ := jws.CompactSerialize()
		return out
	}
	for _, tc := range []struct {
		name, subject string
		noActor       bool
		code, reason  string
	}{
		{"ID token of another client", x.idToken(t, x.dana.ID, x.web.ID, time.Hour), false, "invalid_grant", "ID token for another client"},
		{"ID token alone", id, true, "invalid_request", "cannot be exchanged on its own"},
		{"expired ID token", x.idToken(t, x.dana.ID, x.agentApp.ID, -time.Minute), false, "invalid_grant", "has expired"},
		{"access token labelled id_token", x.danaToken, false, "invalid_request", "is not an ID token"},
		{"user ID labelled id_token", x.dana.ID, false, "invalid_request", "is not a JWT"},
		{"forged ID token", forgedID(), false, "invalid_grant", "not a valid ID token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := map[string]string{"subject_token": tc.subject, "subject_token_type": typeID, "audience": x.api.ID}
			if !tc.noActor {
				f["actor_token"], f["actor_token_type"] = x.agentToken, typeAT
			}
			code, body := x.exchangeAs(x.agentApp, f)
			desc, _ := body["error_description"].(string)
			if code != 400 || body["error"] != tc.code || !strings.Contains(desc, tc.reason) {
				t.Fatalf("%d %v; want %s containing %q", code, body, tc.code, tc.reason)
			}
		})
	}
}
