package signin_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/signin"
	"github.com/signet-id/signet/internal/testenv"
)

// try posts one username and password in a new login request in b and returns the response
// status, its Retry-After and the page's text.
func (x *attackEnv) try(t *testing.T, b *testenv.Browser, username, password string) (int, string, string) {
	t.Helper()
	u, _ := x.authURL("s")
	p := b.Open(u)
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": username, "password": password})
	if p.Location != nil {
		return http.StatusSeeOther, "", "signed in"
	}
	return p.Status, p.Header.Get("Retry-After"), loginError(p.Text())
}

// loginError is the page text without the parts that differ between usernames.
func loginError(text string) string {
	for _, m := range []string{"The username or password is incorrect.", "Too many failed sign-ins.", "This account is locked."} {
		if strings.Contains(text, m) {
			return m
		}
	}
	return text
}

// TestAttackPasswordGuessingIsThrottled: an attacker guesses alice's password, and then, when the
// guess is right, hopes the lock lifted. And the same for a username that does not exist: if the
// answers differed (status, message, Retry-After, or whether argon2 ran) the attacker would learn
// who has an account. Signet counts failures per username as typed, known or not, answers 429
// with Retry-After for the rest of the window even to the right password, and verifies a dummy
// hash for unknown usernames.
func TestAttackPasswordGuessingIsThrottled(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	type answer struct{ status, message string }
	run := func(username, right string) []answer {
		var got []answer
		for i := range 6 {
			status, retry, msg := x.try(t, b, username, fmt.Sprintf("wrong guess %d", i))
			if status == http.StatusTooManyRequests && retry == "" {
				t.Errorf("%s: 429 without Retry-After", username)
			}
			got = append(got, answer{fmt.Sprint(status), msg})
		}
		status, retry, msg := x.try(t, b, username, right)
		if status != http.StatusTooManyRequests || retry == "" {
			t.Errorf("%s: the right password within the window answered %d (Retry-After %q), want 429", username, status, retry)
		}
		return append(got, answer{fmt.Sprint(status), msg})
	}
	known := run("alice", alicePassword)
	unknown := run("nobody-here", "anything at all")
	if want := "429"; known[4].status != want || known[3].status != "401" {
		t.Errorf("alice's answers %v: want 401 for the first four, 429 from the fifth failure", known)
	}
	for i := range known {
		if known[i] != unknown[i] {
			t.Errorf("answer %d differs: known %v, unknown %v (account enumeration)", i, known[i], unknown[i])
		}
	}
}

// TestAttackUnknownUsernameTakesAsLong: a wrong password for an unknown username costs what one
// for a known username does — one argon2id verification with the parameters of stored hashes —
// so the answer's timing does not tell who has an account. Counted, not timed: wall-clock
// comparisons on a shared machine would measure the machine.
func TestAttackUnknownUsernameTakesAsLong(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	for i := range 3 {
		x.CreateUserWithPassword(fmt.Sprintf("known%d", i), alicePassword)
	}
	checks := func(username string) uint64 {
		u, _ := x.authURL("s")
		p := b.Open(u)
		f := p.Form(t, "/ui/login/password")
		f.Values.Set("username", username)
		f.Values.Set("password", "wrong")
		before := x.Server.SignIn.PasswordChecks()
		if resp := raw(t, b, http.MethodPost, f.Action, f.Values); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: a wrong password answered %d, want 401", username, resp.StatusCode)
		}
		return x.Server.SignIn.PasswordChecks() - before
	}
	for i := range 3 {
		known, unknown := checks(fmt.Sprintf("known%d", i)), checks(fmt.Sprintf("unknown%d", i))
		if known != 1 || unknown != 1 {
			t.Fatalf("argon2id verifications: %d for a known username, %d for an unknown one; want 1 each", known, unknown)
		}
	}
	// The stand-in hash has the parameters real ones have (memory, passes, lanes).
	stored, _ := x.Server.Store.GetUserByUsername(context.Background(), "known0")
	if got, want := phcParams(signin.DummyPHC()), phcParams(stored.PasswordHash); got != want {
		t.Fatalf("the unknown-username hash has parameters %q, stored passwords %q", got, want)
	}
}

// phcParams is the parameter part of an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$…).
func phcParams(phc string) string {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 {
		return "malformed: " + phc
	}
	return parts[1] + "$" + parts[2] + "$" + parts[3]
}

// TestAttackAddressThrottle: an attacker sprays one password over many usernames from one
// address, signing in to their own account now and then to reset the count. Signet counts
// failures per address too (50 a window) and a successful sign-in clears only its account's
// count, not the address's.
func TestAttackAddressThrottle(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	for i := range 49 {
		if status, _, _ := x.try(t, b, fmt.Sprintf("user%d", i), "Spring2026!"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d answered %d", i+1, status)
		}
	}
	if status, _, msg := x.try(t, x.NewBrowser(), "alice", alicePassword); status != http.StatusSeeOther {
		t.Fatalf("alice could not sign in under the address limit: %d %s", status, msg)
	}
	if status, retry, _ := x.try(t, b, "user-fifty", "Spring2026!"); status != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("the 50th failure answered %d (Retry-After %q), want 429: a success reset the address count?", status, retry)
	}
	if status, _, _ := x.try(t, b, "another-user", "Spring2026!"); status != http.StatusTooManyRequests {
		t.Errorf("after the address limit another username answered %d, want 429", status)
	}
}

// TestAttackSecondFactorGuessing: someone with alice's password guesses her TOTP code. More than
// five wrong codes end the login request (the right code afterwards gets nothing); and starting
// new login requests (the password is known, so each starts cleanly) does not give five fresh
// guesses each: wrong codes count against the account, so the next request's code is refused
// with 429 for the rest of the window.
func TestAttackSecondFactorGuessing(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	u, _ := x.authURL("s", withACR("mfa"))
	p := b.Open(u)
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	secret, p := enrolTOTP(t, b, p)
	b.Submit(p, "/ui/login/recovery", nil)

	attacker := x.NewBrowser()
	factorPage := func() *testenv.Page {
		u, _ := x.authURL("s")
		p := attacker.Open(u)
		p = attacker.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
		if !p.HasForm("/ui/login/factor") {
			t.Fatalf("want the second-factor page, got %d %s", p.Status, p.Text())
		}
		return p
	}
	right := mfa.Code(secret, time.Now().Add(30*time.Second))
	wrong := func(i int) string {
		c := fmt.Sprintf("%06d", (i*7919+13)%1000000)
		if c == right || c == mfa.Code(secret, time.Now()) || c == mfa.Code(secret, time.Now().Add(-30*time.Second)) {
			c = fmt.Sprintf("%06d", (i*7919+14)%1000000)
		}
		return c
	}
	p = factorPage()
	var last *testenv.Page
	for i := range 5 {
		last = attacker.Submit(p, "/ui/login/factor", map[string]string{"code": wrong(i)})
		if last.Location != nil {
			t.Fatalf("a wrong code signed in: %v", last.Location)
		}
	}
	if last.HasForm("/ui/login/factor") {
		t.Errorf("after five wrong codes the request goes on: %s", last.Text())
	}
	if q := attacker.Submit(p, "/ui/login/factor", map[string]string{"code": right}); q.Location != nil {
		t.Fatalf("the right code after five wrong ones signed in: %v", q.Location)
	}

	// A new request: the password passes, but guesses must not start over.
	p = factorPage()
	q := attacker.Submit(p, "/ui/login/factor", map[string]string{"code": right})
	if q.Location != nil {
		t.Fatalf("a new login request gave five more guesses: the code was accepted right after five wrong ones")
	}
	if q.Status != http.StatusTooManyRequests || q.Header.Get("Retry-After") == "" {
		t.Errorf("the code in a new request answered %d (Retry-After %q), want 429", q.Status, q.Header.Get("Retry-After"))
	}
}
