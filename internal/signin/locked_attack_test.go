package signin_test

import (
	"testing"
	"time"

	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// lock locks (or unlocks) a user the way `signet user lock` does and waits until the directory
// sees it.
func (x *attackEnv) lock(t *testing.T, u *store.User, locked bool) {
	t.Helper()
	cur, err := x.Server.Store.GetUser(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.Locked = locked
	if err := x.Server.Store.UpdateUser(t.Context(), cur); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the directory sees the lock", func() bool {
		got, err := x.Server.Dir.User(t.Context(), u.ID)
		return err == nil && got.Locked == locked
	})
}

// TestAttackLockedBetweenPasswordAndFactor: an administrator locks an account while someone who
// has its password is at the second-factor page. What would break: the lock checked only at the
// password, so a right code still signs in. Signet reloads the user on every step; a locked user
// is nobody, so no code is issued. (Control: unlocked, the same code finishes the sign-in.)
func TestAttackLockedBetweenPasswordAndFactor(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	// alice enrols a TOTP factor (required from then on).
	b := x.NewBrowser()
	u, _ := x.authURL("s", withACR("mfa"))
	p := b.Open(u)
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	secret, p := enrolTOTP(t, b, p)
	if p = b.Submit(p, "/ui/login/recovery", nil); p.Location == nil {
		t.Fatalf("enrolment sign-in did not finish: %s", p.Text())
	}

	b2 := x.NewBrowser()
	u, _ = x.authURL("s")
	p = b2.Open(u)
	p = b2.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	if !p.HasForm("/ui/login/factor") {
		t.Fatalf("want the second-factor page, got %s", p.Text())
	}
	x.lock(t, x.alice, true)
	next := mfa.Code(secret, time.Now().Add(30*time.Second)) // the enrolment used the current step
	q := b2.Submit(p, "/ui/login/factor", map[string]string{"code": next})
	if q.Location != nil {
		t.Fatalf("a locked user got to the client: %v", q.Location)
	}
	x.lock(t, x.alice, false)
	q = b2.Submit(p, "/ui/login/factor", map[string]string{"code": next})
	if q.Location == nil || q.Location.Query().Get("code") == "" {
		t.Fatalf("control: unlocked, the code did not finish the sign-in: %d %s", q.Status, q.Text())
	}
}

// TestAttackLockedBetweenCodeAndRedemption: the account is locked after the code was issued. What
// would break: the code still redeemed for tokens. The code grant checks the user's standing.
func TestAttackLockedBetweenCodeAndRedemption(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	code, verifier := x.signIn(t, x.NewBrowser())
	x.lock(t, x.alice, true)
	if status, body := x.redeem(x.rp.client, code, verifier); status == 200 {
		t.Fatalf("a locked user's code was redeemed: %v", body)
	}
}

// TestAttackLockedDuringSession: the account is locked while its browser session and refresh
// token live. What would break: single sign-on handing out codes, or refresh minting tokens, for
// a locked account. Signet treats a locked user's session as no session and refuses refresh.
func TestAttackLockedDuringSession(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	code, verifier := x.signIn(t, b)
	at, rt, _ := x.tokens(t, code, verifier)
	x.lock(t, x.alice, true)
	u, _ := x.authURL("s")
	if p := b.Open(u); p.Location != nil && p.Location.Query().Get("code") != "" {
		t.Error("single sign-on gave a locked user a code")
	}
	if status, body := x.refresh(rt); status == 200 {
		t.Errorf("a locked user's refresh token refreshed: %v", body)
	}
	if x.active(t, at) {
		t.Error("a locked user's access token is active")
	}
	if signedInAccount(t, b) {
		t.Error("a locked user's browser opens the account page")
	}
}
