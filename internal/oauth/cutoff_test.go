package oauth_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// TestTokensMintedRightAfterACutOffAreActive: through the token and introspection endpoints, a
// token minted right after the kill switch went off and on again, after an actor's sessions were
// ended, or after a user was locked and unlocked, is active as soon as the change has had time to
// reach every replica (Sessions.Propagation, here 20 ms; no waiting for the next second: iat has
// whole seconds, the cut-offs milliseconds and finer), while a token minted before the cut-off
// stays inactive.
func TestTokensMintedRightAfterACutOffAreActive(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	x.Server.Sessions.Propagation = 20 * time.Millisecond
	impersonate := func(t *testing.T) string {
		t.Helper()
		code, body := x.impersonate("ticket")
		if code != 200 {
			t.Fatalf("impersonation: %d %v", code, body)
		}
		return body["access_token"].(string)
	}
	for _, tc := range []struct {
		name   string
		cutOff func() error
	}{
		{"kill switch off and on", func() error {
			if err := x.Server.Sessions.Disable(ctx, "ops", "incident"); err != nil {
				return err
			}
			return x.Server.Sessions.Enable(ctx, "ops", "resolved")
		}},
		{"actor's sessions ended", func() error {
			_, err := x.Server.Sessions.EndActor(ctx, x.sam.ID, "ops", "audit")
			return err
		}},
		{"subject locked and unlocked", func() error {
			lockUser(t, x, x.dana.Username)
			if err := x.Server.Sessions.RetirePrincipal(ctx, store.KindUser, x.dana.ID, "ops", "locked", x.Config.MaxAccessTTL); err != nil {
				return err
			}
			x.dana.Locked = false
			if err := x.Server.Store.UpdateUser(ctx, x.dana); err != nil {
				return err
			}
			x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeUser, Key: x.dana.ID})
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := impersonate(t)
			if err := tc.cutOff(); err != nil {
				t.Fatal(err)
			}
			nextMillisecond(time.Now().Add(x.Server.Sessions.Propagation))
			after := impersonate(t)
			if got := x.introspect(t, after); got["active"] != true {
				t.Fatalf("a token minted after the cut-off is dead on arrival: %v", got)
			}
			if got := x.introspect(t, before); got["active"] != false {
				t.Fatalf("a token minted before the cut-off survived it: %v", got)
			}
		})
	}
}

// nextMillisecond waits until the clock has left the millisecond of at (a bounded wait for time
// to pass, not synchronisation): a cut-off also reaches what is minted in its own millisecond.
func nextMillisecond(at time.Time) {
	for time.Now().UnixMilli() <= at.UnixMilli() {
		runtime.Gosched()
	}
}
