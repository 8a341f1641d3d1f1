package signin_test

import (
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/testenv"
)

// TestAttackCodeReplayRevokesEverything tries a stolen code presented after the client redeemed
// it (or the other way round). If a second redemption only failed, the thief's tokens from a
// first redemption would live on; Signet marks the code used atomically and, on a second
// presentation, revokes the whole grant: the access, refresh and ID tokens of the first
// redemption all stop working. Run on both backends: the promise is the store's atomic "use once".
func TestAttackCodeReplayRevokesEverything(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := ""
			if backend == "postgres" {
				db = testenv.PostgresDSN(t)
			}
			x := newAttackEnv(t, db, nil)
			code, verifier := x.signIn(t, x.NewBrowser(), oauth2.SetAuthURLParam("nonce", "n1"))
			at, rt, idt := x.tokens(t, code, verifier)
			if !x.active(t, at) {
				t.Fatal("fresh access token inactive")
			}
			status, body := x.delegate(t, idt, "id_token")
			if status != 200 {
				t.Fatalf("the ID token was not usable as a subject token before the replay: %d %v", status, body)
			}
			derived := body["access_token"].(string)
			status, body = x.redeem(x.rp.client, code, verifier)
			if status != 400 || body["error"] != "invalid_grant" {
				t.Fatalf("second redemption: %d %v, want invalid_grant", status, body)
			}
			if x.active(t, at) {
				t.Error("access token of the first redemption still active after a replay")
			}
			if status, body := x.refresh(rt); status == 200 {
				t.Errorf("refresh token of the first redemption still refreshes after a replay: %v", body)
			}
			if status, _ := x.Bearer(http.MethodGet, "/oidc/v1/userinfo", at, nil); status == 200 {
				t.Error("userinfo answered for the access token of a replayed code")
			}
			if status, body := x.delegate(t, idt, "id_token"); status == 200 {
				t.Errorf("the ID token of a replayed code was exchanged: %v", body)
			}
			if x.active(t, derived) {
				t.Error("a token exchanged from the first redemption's ID token is still active after a replay")
			}
		})
	}
}

// TestAttackCodeRedeemedByAnotherClientIsSpent: a client that intercepted another's code tries
// it; the try is refused and the code is spent (the rightful client's redemption fails too and
// nothing was issued to anyone), so an interception is at worst a denial, never a token.
func TestAttackCodeRedeemedByAnotherClientIsSpent(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	other := newRP(t, x.Env, nil)
	code, verifier := x.signIn(t, x.NewBrowser())
	if status, body := x.redeem(other.client, code, verifier); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("another client redeemed the code: %d %v", status, body)
	}
	if status, body := x.redeem(x.rp.client, code, verifier); status == 200 {
		t.Fatalf("a code presented by another client was still good: %v", body)
	}
}

// TestAttackCodeWrongVerifierSpendsCode: a thief without the verifier guesses one; the guess
// spends the code, so a later right verifier (the thief learning it, or guessing again) gets
// nothing: PKCE is one try per code.
func TestAttackCodeWrongVerifierSpendsCode(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	code, verifier := x.signIn(t, x.NewBrowser())
	if status, body := x.redeem(x.rp.client, code, oauth2.GenerateVerifier()); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", status, body)
	}
	if status, body := x.redeem(x.rp.client, code, verifier); status == 200 {
		t.Fatalf("the right verifier after a wrong one redeemed the code: %v", body)
	}
}

// TestAttackPKCEDowngrade: a code requested with a challenge redeemed without a verifier (the
// thief drops PKCE), and a code requested without a challenge redeemed with a verifier (PKCE
// bolted on afterwards) are both refused.
func TestAttackPKCEDowngrade(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	code, _ := x.signIn(t, x.NewBrowser())
	if status, body := x.redeem(x.rp.client, code, ""); status == 200 {
		t.Fatalf("a code with a challenge was redeemed without a verifier: %v", body)
	}

	// A confidential client may skip PKCE; then a verifier must not be accepted either.
	b := x.NewBrowser()
	p := b.Open(x.rp.conf.AuthCodeURL("s"))
	if p.HasForm("/ui/login/password") {
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	}
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Skipf("this client may not sign in without PKCE (%d %s)", p.Status, p.Text())
	}
	if status, body := x.redeem(x.rp.client, p.Location.Query().Get("code"), oauth2.GenerateVerifier()); status == 200 {
		t.Fatalf("a code without a challenge was redeemed with a verifier: %v", body)
	}
}
