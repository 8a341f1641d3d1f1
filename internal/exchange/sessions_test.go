package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/store/storetest"
	"github.com/signet-id/signet/internal/tokens"
)

// revocations records what Sessions revokes.
type revocations struct{ got []store.Revocation }

func (r *revocations) Revoke(_ context.Context, rev store.Revocation) error {
	r.got = append(r.got, rev)
	return nil
}

// sessionsEnv is exchange.Sessions on a real SQLite store, at a fixed time.
type sessionsEnv struct {
	st  store.Store
	m   *exchange.Sessions
	rev *revocations
	now time.Time
}

func newSessions(t *testing.T) *sessionsEnv {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "signet.db"), sqlstore.WithAuditKey(storetest.AuditKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &sessionsEnv{st: st, rev: &revocations{}, now: time.Now().Truncate(time.Second)}
	e.m = &exchange.Sessions{Store: st, Tokens: e.rev, Audit: audit.New(st), Now: func() time.Time { return e.now }}
	return e
}

// open stores a session opened a minute ago that lasts an hour.
func (e *sessionsEnv) open(t *testing.T, id, kind, actor, subject, client string) {
	t.Helper()
	ev, err := audit.New(e.st).Build(audit.Event{Type: audit.TypeExchangeAllowed, Actor: actor, Subject: subject, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	x := &store.ExchangeSession{ID: id, Kind: kind, Actor: actor, Subject: subject, Client: client, Rule: "r",
		CreatedAt: e.now.Add(-time.Minute), ExpiresAt: e.now.Add(time.Hour)}
	if err := e.st.OpenExchangeSession(context.Background(), x, ev); err != nil {
		t.Fatal(err)
	}
}

func (e *sessionsEnv) ended(t *testing.T, id string) *store.ExchangeSession {
	t.Helper()
	x, err := e.st.GetExchangeSession(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// lastEvent returns the newest audit event of typ and its details.
func (e *sessionsEnv) lastEvent(t *testing.T, typ string) (store.AuditEvent, map[string]any) {
	t.Helper()
	list, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil || len(list) == 0 {
		t.Fatalf("no %s event: %v", typ, err)
	}
	ev := list[len(list)-1]
	var d map[string]any
	if err := json.Unmarshal(ev.Details, &d); err != nil {
		t.Fatal(err)
	}
	return ev, d
}

// wantRevocation asserts the one revocation made since the last call.
func (e *sessionsEnv) wantRevocation(t *testing.T, kind, value, reason string, until time.Time) {
	t.Helper()
	if len(e.rev.got) != 1 {
		t.Fatalf("want one revocation, got %+v", e.rev.got)
	}
	r := e.rev.got[0]
	e.rev.got = nil
	if r.Kind != kind || r.Value != value || !r.At.Equal(e.now) || !r.ExpiresAt.Equal(until) || !strings.Contains(r.Reason, reason) {
		t.Fatalf("revocation %+v; want %s %s at %v until %v, reason containing %q", r, kind, value, e.now, until, reason)
	}
}

// TestEndingOneSession: the event is recorded, the session says when and by whom it ended, and one
// revocation of the session lasts as long as any token of it can.
func TestEndingOneSession(t *testing.T) {
	e := newSessions(t)
	ctx := context.Background()
	e.open(t, "xs-1", exchange.ModeImpersonation, "u-sam", "u-dana", "c-spa")
	e.open(t, "xs-2", exchange.ModeImpersonation, "u-sam", "u-dana", "c-spa")
	if err := e.m.End(ctx, "xs-missing", "ops", "x"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "signet impersonation list") {
		t.Fatalf("ending an unknown session: %v", err)
	}
	if len(e.rev.got) != 0 {
		t.Fatalf("an unknown session revoked %+v", e.rev.got)
	}
	if err := e.m.End(ctx, "xs-1", "user:u-olga", "ticket closed"); err != nil {
		t.Fatal(err)
	}
	if x := e.ended(t, "xs-1"); !x.EndedAt.Equal(e.now) || x.EndedBy != "user:u-olga" {
		t.Fatalf("ended session %+v", x)
	}
	if x := e.ended(t, "xs-2"); !x.EndedAt.IsZero() {
		t.Fatalf("another session ended too: %+v", x)
	}
	ev, d := e.lastEvent(t, audit.TypeSessionEnded)
	if ev.Actor != "user:u-olga" || ev.Subject != "u-dana" || ev.Client != "c-spa" || d["session"] != "xs-1" || d["reason"] != "ticket closed" ||
		d["kind"] != exchange.ModeImpersonation || d["session_actor"] != "u-sam" {
		t.Fatalf("event %+v %v", ev, d)
	}
	e.wantRevocation(t, store.RevokeSession, "xs-1", "ticket closed", e.now.Add(exchange.MaxRefreshTTL+time.Hour))
	active, err := e.m.Active(ctx)
	if err != nil || len(active) != 1 || active[0].ID != "xs-2" {
		t.Fatalf("active sessions %+v %v", active, err)
	}
}

// TestEndingEverySessionOfOne: by actor, subject or client, each ends only the matching sessions,
// audits once and revokes with one entry.
func TestEndingEverySessionOfOne(t *testing.T) {
	for _, tc := range []struct {
		name, kind, value string
		end               func(m *exchange.Sessions, id string) (int, error)
		want              []string // sessions ended
		actor, subject    string   // in the event
		client            string
	}{
		{"actor", store.RevokeSessionsOfActor, "u-sam", func(m *exchange.Sessions, id string) (int, error) {
			return m.EndActor(context.Background(), id, "ops", "why")
		},
			[]string{"xs-1", "xs-2"}, "u-sam", "", ""},
		{"subject", store.RevokeSessionsOfSubject, "u-dana", func(m *exchange.Sessions, id string) (int, error) {
			return m.EndSubject(context.Background(), id, "ops", "why")
		}, []string{"xs-1", "xs-3"}, "", "u-dana", ""},
		{"client", store.RevokeSessionsOfClient, "c-app", func(m *exchange.Sessions, id string) (int, error) {
			return m.EndClient(context.Background(), id, "ops", "why")
		}, []string{"xs-2", "xs-3"}, "", "", "c-app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSessions(t)
			e.open(t, "xs-1", exchange.ModeImpersonation, "u-sam", "u-dana", "c-spa")
			e.open(t, "xs-2", exchange.ModeDelegation, "u-sam", "u-erin", "c-app")
			e.open(t, "xs-3", exchange.ModeDelegation, "sa-bot", "u-dana", "c-app")
			e.open(t, "xs-4", exchange.ModeDelegation, "sa-bot", "u-erin", "c-spa")
			n, err := tc.end(e.m, tc.value)
			if err != nil || n != len(tc.want) {
				t.Fatalf("ended %d: %v", n, err)
			}
			for _, id := range []string{"xs-1", "xs-2", "xs-3", "xs-4"} {
				x := e.ended(t, id)
				want := strings.Contains(strings.Join(tc.want, " "), id)
				if x.EndedAt.IsZero() == want || (want && x.EndedBy != "ops") {
					t.Fatalf("session %s: ended %v by %q, want ended %v", id, x.EndedAt, x.EndedBy, want)
				}
			}
			ev, d := e.lastEvent(t, audit.TypeSessionEnded)
			if ev.Actor != "ops" || ev.Subject != tc.subject || ev.Client != tc.client || d["sessions_of"] != tc.kind || d["value"] != tc.value ||
				d["reason"] != "why" || d["session_actor"] != tc.actor {
				t.Fatalf("event %+v %v", ev, d)
			}
			e.wantRevocation(t, tc.kind, tc.value, "why", e.now.Add(exchange.MaxRefreshTTL+time.Hour))
		})
	}
}

// TestKillSwitch: Disable audits, turns the switch on (at once in this process), revokes every
// impersonation token and ends every impersonation session, never a delegation; Enable turns it
// back off without reviving anything.
func TestKillSwitch(t *testing.T) {
	e := newSessions(t)
	ctx := context.Background()
	e.open(t, "xs-1", exchange.ModeImpersonation, "u-sam", "u-dana", "c-spa")
	e.open(t, "xs-2", exchange.ModeDelegation, "sa-bot", "u-dana", "c-app")
	if off, err := e.m.ImpersonationDisabled(ctx); err != nil || off {
		t.Fatalf("the switch starts off: %v %v", off, err)
	}
	if err := e.m.Disable(ctx, "ops", "incident"); err != nil {
		t.Fatal(err)
	}
	if off, err := e.m.ImpersonationDisabled(ctx); err != nil || !off {
		t.Fatalf("after Disable: %v %v", off, err)
	}
	if v, err := e.st.GetSetting(ctx, exchange.KillSwitchSetting); err != nil || v != "true" {
		t.Fatalf("the switch must be stored for the other replicas: %q %v", v, err)
	}
	ev, d := e.lastEvent(t, audit.TypeImpersonationOff)
	if ev.Actor != "ops" || d["reason"] != "incident" {
		t.Fatalf("event %+v %v", ev, d)
	}
	e.wantRevocation(t, store.RevokeExchangeKind, exchange.ModeImpersonation, "incident", e.now.Add(exchange.MaxRefreshTTL+time.Hour))
	if x := e.ended(t, "xs-1"); !x.EndedAt.Equal(e.now) || x.EndedBy != "ops" {
		t.Fatalf("the impersonation session must end: %+v", x)
	}
	if x := e.ended(t, "xs-2"); !x.EndedAt.IsZero() {
		t.Fatalf("a delegation session ended: %+v", x)
	}
	if err := e.m.Enable(ctx, "ops", "resolved"); err != nil {
		t.Fatal(err)
	}
	if off, err := e.m.ImpersonationDisabled(ctx); err != nil || off {
		t.Fatalf("after Enable: %v %v", off, err)
	}
	if ev, d := e.lastEvent(t, audit.TypeImpersonationOn); ev.Actor != "ops" || d["reason"] != "resolved" {
		t.Fatalf("event %+v %v", ev, d)
	}
	if len(e.rev.got) != 0 {
		t.Fatalf("Enable revoked %+v", e.rev.got)
	}
	if x := e.ended(t, "xs-1"); x.EndedAt.IsZero() {
		t.Fatal("Enable must not reopen a session")
	}
}

// TestKillSwitchCacheFollowsTheChangeFeed: another replica's switch applies here when the change
// feed reports the setting (or a resync), and not before; other changes keep the cache.
func TestKillSwitchCacheFollowsTheChangeFeed(t *testing.T) {
	e := newSessions(t)
	ctx := context.Background()
	state := func() bool {
		t.Helper()
		off, err := e.m.ImpersonationDisabled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	if state() {
		t.Fatal("the switch starts off")
	}
	if err := e.st.PutSetting(ctx, exchange.KillSwitchSetting, "true"); err != nil { // another replica
		t.Fatal(err)
	}
	e.m.Invalidate(store.Change{Kind: store.ChangeSetting, Key: "other"})
	e.m.Invalidate(store.Change{Kind: store.ChangeUser, Key: exchange.KillSwitchSetting})
	if state() {
		t.Fatal("an unrelated change must keep the cached switch")
	}
	e.m.Invalidate(store.Change{Kind: store.ChangeSetting, Key: exchange.KillSwitchSetting})
	if !state() {
		t.Fatal("the change feed reported the switch; it must apply")
	}
	if err := e.st.PutSetting(ctx, exchange.KillSwitchSetting, "false"); err != nil {
		t.Fatal(err)
	}
	e.m.Invalidate(store.Change{Kind: store.ChangeResync})
	if state() {
		t.Fatal("a resync must reread the switch")
	}
}

// TestRetiringAPrincipal: a locked user, a disabled service account or client loses every token
// about it (and, for a client, issued to it) until now, for as long as any can live, and every
// session in which it acts ends.
func TestRetiringAPrincipal(t *testing.T) {
	for _, tc := range []struct {
		kind  store.PrincipalKind
		id    string
		kinds []string
	}{
		{store.KindUser, "u-sam", []string{store.RevokeSubject, store.RevokeSessionsOfActor}},
		{store.KindClient, "u-sam", []string{store.RevokeSubject, store.RevokeClient, store.RevokeSessionsOfActor}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			e := newSessions(t)
			e.open(t, "xs-1", exchange.ModeImpersonation, "u-sam", "u-dana", "c-spa")
			e.open(t, "xs-2", exchange.ModeImpersonation, "u-olga", "u-dana", "c-spa")
			for _, life := range []time.Duration{time.Hour, 90 * 24 * time.Hour} {
				e.rev.got = nil
				if err := e.m.RetirePrincipal(context.Background(), tc.kind, tc.id, "ops", "locked", life); err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, r := range e.rev.got {
					kinds = append(kinds, r.Kind)
					if r.Value != tc.id || !r.At.Equal(e.now) {
						t.Fatalf("revocation %+v", r)
					}
					if r.Kind != store.RevokeSessionsOfActor {
						if want := tokens.KeepRevocationUntil(e.now.Add(max(life, exchange.MaxRefreshTTL))); !r.ExpiresAt.Equal(want) || r.Reason != "locked" {
							t.Fatalf("revocation %+v, want until %v", r, want)
						}
					}
				}
				if strings.Join(kinds, ",") != strings.Join(tc.kinds, ",") {
					t.Fatalf("revocations %v, want %v", kinds, tc.kinds)
				}
			}
			if e.ended(t, "xs-1").EndedAt.IsZero() || !e.ended(t, "xs-2").EndedAt.IsZero() {
				t.Fatal("only the sessions in which the principal acts end")
			}
		})
	}
}
