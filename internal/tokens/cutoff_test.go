package tokens_test

import (
	"testing"
	"time"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// TestCutOffsWithinOneSecond: iat has whole seconds, cut-offs (a principal retired, the kill
// switch, an actor's sessions ended) have microseconds. A token minted after a cut-off in the same
// second is active, not dead on arrival; one minted before it in the same second is reached by it;
// so is one minted in the cut-off's very millisecond, the finest precision its ID carries. The
// answers are the same here (the revocation as given) and on a replica that read it from the store.
func TestCutOffsWithinOneSecond(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name   string
		rev    store.Revocation // At is an offset into the second
		minted time.Duration    // when the token was minted, into the same second
		change func(a *tokens.Access, at time.Time)
		active bool
	}{
		{name: "subject retired, token minted after", rev: store.Revocation{Kind: store.RevokeSubject, Value: "u-dana"}, minted: ms(700), active: true},
		{name: "subject retired, token minted before", rev: store.Revocation{Kind: store.RevokeSubject, Value: "u-dana"}, minted: ms(100)},
		{name: "subject retired, token minted in the same ms", rev: store.Revocation{Kind: store.RevokeSubject, Value: "u-dana"}, minted: ms(300) + 600*time.Microsecond},
		{name: "client retired, token minted after", rev: store.Revocation{Kind: store.RevokeClient, Value: "c-app"}, minted: ms(301), active: true},
		{name: "client retired, token minted before", rev: store.Revocation{Kind: store.RevokeClient, Value: "c-app"}, minted: ms(299)},
		{name: "kill switch, impersonation minted after", rev: store.Revocation{Kind: store.RevokeExchangeKind, Value: "impersonation"}, minted: ms(700),
			change: impersonation, active: true},
		{name: "kill switch, impersonation minted before", rev: store.Revocation{Kind: store.RevokeExchangeKind, Value: "impersonation"}, minted: ms(100),
			change: impersonation},
		{name: "actor's sessions ended, session opened after", rev: store.Revocation{Kind: store.RevokeSessionsOfActor, Value: "u-sam"}, minted: ms(700),
			change: impersonation, active: true},
		{name: "actor's sessions ended, session opened before", rev: store.Revocation{Kind: store.RevokeSessionsOfActor, Value: "u-sam"}, minted: ms(100),
			change: impersonation},
		{name: "actor's sessions ended, refreshed after from a session opened before", rev: store.Revocation{Kind: store.RevokeSessionsOfActor, Value: "u-sam"},
			minted: ms(700), change: func(a *tokens.Access, at time.Time) { impersonation(a, at.Add(-ms(600))) }},
		{name: "actor's sessions ended, session from before time-ordered IDs", rev: store.Revocation{Kind: store.RevokeSessionsOfActor, Value: "u-sam"},
			minted: ms(700), change: func(a *tokens.Access, at time.Time) {
				impersonation(a, at)
				a.Exchange.Session = "xs-ffffffffffff" + secrets.NewID()[12:] // a random ID reads as year 10889
			}},
		{name: "token from before IDs carried a time, minted after", rev: store.Revocation{Kind: store.RevokeSubject, Value: "u-dana"}, minted: ms(700),
			change: func(a *tokens.Access, _ time.Time) { a.ID = secrets.NewID() }}, // judged to the second: reached
		{name: "derived from a token minted after", rev: store.Revocation{Kind: store.RevokeSubject, Value: "u-dana"}, minted: ms(700),
			change: derived, active: true},
		{name: "derived from a token minted before", rev: store.Revocation{Kind: store.RevokeSubject, Value: "u-dana"}, minted: ms(100),
			change: derived},
	} {
		for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				f := newFixture(t)
				second := f.now // whole
				rev := tc.rev
				rev.At, rev.ExpiresAt = second.Add(ms(300)), second.Add(time.Hour)
				if err := f.svc.Revoke(f.ctx, rev); err != nil {
					t.Fatal(err)
				}
				at := second.Add(tc.minted)
				a := f.access()
				a.ID = tokens.NewID(at)
				if tc.change != nil {
					tc.change(a, at)
				}
				raw := f.issue(t, a, format)
				replica := tokens.New(f.base)
				if err := replica.LoadRevocations(f.ctx); err != nil {
					t.Fatal(err)
				}
				for name, svc := range map[string]*tokens.Service{"here": f.svc, "replica": replica} {
					_, inactive, err := svc.Resolve(f.ctx, raw)
					if err != nil {
						t.Fatal(err)
					}
					if got := inactive == nil; got != tc.active {
						t.Errorf("%s: minted at +%v, cut-off at +300ms: active = %v (%v), want %v", name, tc.minted, got, inactive, tc.active)
					}
				}
			})
		}
	}
}

// impersonation makes a an impersonation of a's subject by u-sam, in a session opened at opened.
func impersonation(a *tokens.Access, opened time.Time) {
	a.Act = &tokens.Actor{Subject: "u-sam", ClientID: "c-app"}
	a.Exchange = &tokens.Exchange{Kind: "impersonation", Session: "xs-" + secrets.NewSortableID(opened)}
}

// derived makes a a token derived (a second later) from one minted at at.
func derived(a *tokens.Access, at time.Time) {
	parent := &tokens.Access{ID: a.ID, Subject: a.Subject, SubjectKind: a.SubjectKind, ClientID: a.ClientID, IssuedAt: at.Truncate(time.Second)}
	lineage, err := tokens.Derive(parent)
	if err != nil {
		panic(err)
	}
	a.Subject, a.ClientID, a.Lineage = "u-other", "c-other", lineage
	a.IssuedAt, a.ID = a.IssuedAt.Add(time.Second), tokens.NewID(at.Add(time.Second))
}

// TestRefreshTokensKeepTheirIssueTime: a refresh token's record ID carries the issue time of the
// token it was issued with, so a refresh token minted after a cut-off in the same second can be
// used and one minted before it cannot.
func TestRefreshTokensKeepTheirIssueTime(t *testing.T) {
	f := newFixture(t)
	if err := f.svc.Revoke(f.ctx, store.Revocation{Kind: store.RevokeSubject, Value: "u-dana", At: f.now.Add(300 * time.Millisecond), ExpiresAt: f.now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for minted, want := range map[time.Duration]string{100 * time.Millisecond: "revoked", 700 * time.Millisecond: "active"} {
		a := f.access()
		a.ID = tokens.NewID(f.now.Add(minted))
		raw, err := f.svc.IssueRefresh(f.ctx, a, f.now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		_, _, inactive, err := f.svc.ResolveRefresh(f.ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		got := "active"
		if inactive != nil {
			got = inactive.Code
		}
		if got != want {
			t.Errorf("refresh token minted at +%v, cut-off at +300ms: %s (%v), want %s", minted, got, inactive, want)
		}
	}
}
