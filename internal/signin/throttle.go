package signin

import (
	"context"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Throttle limits failed sign-ins, per account and per client address, in fixed windows kept in the
// store (so every replica counts the same failures). The account is keyed by the username as typed
// (folded), whether or not it exists, so a throttled answer reveals no more than a wrong password.
type Throttle struct {
	// PerAccount failures within Window block further tries of that username until the window ends;
	// PerAddress failures block the address. Zero values take the defaults (5, 50, 15 minutes).
	PerAccount int
	PerAddress int
	Window     time.Duration
}

func (t *Throttle) defaults() {
	if t.PerAccount == 0 {
		t.PerAccount = 5
	}
	if t.PerAddress == 0 {
		t.PerAddress = 50
	}
	if t.Window == 0 {
		t.Window = 15 * time.Minute
	}
}

func accountKey(username string) string { return "login:" + strings.ToLower(username) }
func addressKey(ip string) string       { return "ip:" + ip }

// blocked returns how long the username or the address must wait before another try (0: none).
func (t *Throttle) blocked(ctx context.Context, st store.Store, username, ip string, now time.Time) (time.Duration, error) {
	var wait time.Duration
	for _, k := range []struct {
		key   string
		limit int
	}{{accountKey(username), t.PerAccount}, {addressKey(ip), t.PerAddress}} {
		n, since, err := st.SignInFailures(ctx, k.key, now, t.Window)
		if err != nil {
			return 0, err
		}
		if n >= k.limit {
			wait = max(wait, since.Add(t.Window).Sub(now))
		}
	}
	return wait, nil
}

// count counts a failed sign-in against both keys and returns how long they must now wait (0 while
// under both limits).
func (t *Throttle) count(ctx context.Context, st store.Store, username, ip string, now time.Time) (time.Duration, error) {
	var wait time.Duration
	for _, k := range []struct {
		key   string
		limit int
	}{{accountKey(username), t.PerAccount}, {addressKey(ip), t.PerAddress}} {
		n, since, err := st.AddSignInFailure(ctx, k.key, now, t.Window)
		if err != nil {
			return 0, err
		}
		if n >= k.limit {
			wait = max(wait, since.Add(t.Window).Sub(now))
		}
	}
	return wait, nil
}

// clear forgets an account's failures after it signed in; the address keeps its count (an attacker
// who owns one account must not reset the count of the address it guesses others' from).
func (t *Throttle) clear(ctx context.Context, st store.Store, username string) error {
	return st.ClearSignInFailures(ctx, accountKey(username))
}

// factorKey counts a user's wrong second-factor codes. Whoever enters them knows the password,
// so starting a new login request must not bring fresh guesses: the count is the account's, not
// the request's, and a right password does not clear it (only a right code does).
func factorKey(userID string) string { return "mfa:" + userID }

// factorBlocked returns how long the user must wait before another second-factor code (0: none).
func (t *Throttle) factorBlocked(ctx context.Context, st store.Store, userID string, now time.Time) (time.Duration, error) {
	n, since, err := st.SignInFailures(ctx, factorKey(userID), now, t.Window)
	if err != nil || n < t.PerAccount {
		return 0, err
	}
	return since.Add(t.Window).Sub(now), nil
}

// countFactor counts a wrong second-factor code and returns how long the user must now wait.
func (t *Throttle) countFactor(ctx context.Context, st store.Store, userID string, now time.Time) (time.Duration, error) {
	n, since, err := st.AddSignInFailure(ctx, factorKey(userID), now, t.Window)
	if err != nil || n < t.PerAccount {
		return 0, err
	}
	return since.Add(t.Window).Sub(now), nil
}

// clearFactor forgets a user's wrong codes after a right one.
func (t *Throttle) clearFactor(ctx context.Context, st store.Store, userID string) error {
	return st.ClearSignInFailures(ctx, factorKey(userID))
}
