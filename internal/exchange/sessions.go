package exchange

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/changefeed"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// KillSwitchSetting is the setting that disables impersonation for everyone.
const KillSwitchSetting = "impersonation_disabled"

// Revoker applies a revocation (tokens.Service).
type Revoker interface {
	Revoke(ctx context.Context, rev store.Revocation) error
}

// SessionStore is the part of the store that sessions and the kill switch use.
type SessionStore interface {
	GetSetting(ctx context.Context, name string) (string, error)
	PutSetting(ctx context.Context, name, value string) error
	GetExchangeSession(ctx context.Context, id string) (*store.ExchangeSession, error)
	ListExchangeSessions(ctx context.Context, activeAt time.Time) ([]store.ExchangeSession, error)
	EndExchangeSession(ctx context.Context, id, by string, at time.Time) error
	EndExchangeSessions(ctx context.Context, sel store.SessionSelector, by string, at time.Time) (int, error)
}

// Sessions ends delegation and impersonation: one session, every session of an actor, a subject or
// a client, or all impersonation at once (the kill switch). Each action is audited first, then
// applied with one revocation that reaches every token derived from the sessions (on every replica
// within the change-feed bound) and one update of the session records. The token endpoint, the CLI
// and the admin API all use it.
type Sessions struct {
	Store  SessionStore
	Tokens Revoker
	Audit  *audit.Log
	Now    func() time.Time
	// Propagation is how long a change may take to reach every process that mints tokens (the
	// server's change-feed poll, twice over). The kill switch's cut-off and a retired principal's lie
	// that far ahead of the change, so that a replica — or, on SQLite, the server when the CLI made
	// the change — still deciding on a stale cache cannot mint a token that escapes them. The cost: a
	// token minted within that window after the switch is turned back on (or the principal
	// unlocked) is inactive too.
	Propagation time.Duration

	killSwitch changefeed.Cached[bool]
}

func (m *Sessions) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Invalidate drops the cached kill switch when the change feed reports it changed.
func (m *Sessions) Invalidate(c store.Change) {
	if c.Kind == store.ChangeSetting && c.Key == KillSwitchSetting || c.Kind == store.ChangeResync {
		m.killSwitch.Invalidate()
	}
}

// Active lists sessions that have not ended or expired.
func (m *Sessions) Active(ctx context.Context) ([]store.ExchangeSession, error) {
	return m.Store.ListExchangeSessions(ctx, m.now())
}

// End ends one session.
func (m *Sessions) End(ctx context.Context, id, by, reason string) error {
	x, err := m.Store.GetExchangeSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no exchange session %q (see `signet impersonation list`): %w", id, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeSessionEnded, Actor: by, Subject: x.Subject, Client: x.Client,
		Details: map[string]any{"session": x.ID, "kind": x.Kind, "session_actor": x.Actor, "reason": reason}}); err != nil {
		return err
	}
	now := m.now()
	if err := m.Store.EndExchangeSession(ctx, x.ID, by, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return m.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeSession, Value: x.ID, At: now,
		ExpiresAt: sessionRevocationExpiry(now), Reason: "session ended by " + by + ": " + reason})
}

// EndActor ends every open session in which id acts; EndSubject every one about id; EndClient every
// one requested by client id. Each returns how many sessions it ended.
func (m *Sessions) EndActor(ctx context.Context, id, by, reason string) (int, error) {
	return m.endAll(ctx, store.SessionSelector{Actor: id}, store.RevokeSessionsOfActor, id, by, reason)
}

func (m *Sessions) EndSubject(ctx context.Context, id, by, reason string) (int, error) {
	return m.endAll(ctx, store.SessionSelector{Subject: id}, store.RevokeSessionsOfSubject, id, by, reason)
}

func (m *Sessions) EndClient(ctx context.Context, id, by, reason string) (int, error) {
	return m.endAll(ctx, store.SessionSelector{Client: id}, store.RevokeSessionsOfClient, id, by, reason)
}

// endAll audits, marks the sessions ended (so none is refreshed again) and then revokes every token
// of the sessions opened until now with one entry.
func (m *Sessions) endAll(ctx context.Context, sel store.SessionSelector, kind, id, by, reason string) (int, error) {
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeSessionEnded, Actor: by, Subject: sel.Subject, Client: sel.Client,
		Details: map[string]any{"sessions_of": kind, "value": id, "session_actor": sel.Actor, "reason": reason}}); err != nil {
		return 0, err
	}
	now := m.now()
	n, err := m.Store.EndExchangeSessions(ctx, sel, by, now)
	if err != nil {
		return 0, err
	}
	return n, m.Tokens.Revoke(ctx, store.Revocation{Kind: kind, Value: id, At: now, ExpiresAt: sessionRevocationExpiry(now),
		Reason: "sessions ended by " + by + ": " + reason})
}

// sessionRevocationExpiry keeps a session revocation until no token of a session open now can be
// valid: sessions last at most MaxRefreshTTL, and what was derived from them no longer.
func sessionRevocationExpiry(now time.Time) time.Time {
	return now.Add(MaxRefreshTTL + time.Hour)
}

// ImpersonationDisabled reports whether the kill switch is on, from the cache when it is current.
func (m *Sessions) ImpersonationDisabled(ctx context.Context) (bool, error) {
	return m.killSwitch.Get(ctx, func(ctx context.Context) (bool, error) {
		v, err := m.Store.GetSetting(ctx, KillSwitchSetting)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return v == "true", err
	})
}

// Disable flips the kill switch: no new impersonation, no refresh of an existing one, and every
// impersonation token issued so far is inactive. Delegation is not affected. It applies in this
// process at once, elsewhere within the change-feed bound.
func (m *Sessions) Disable(ctx context.Context, by, reason string) error {
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeImpersonationOff, Actor: by, Details: map[string]any{"reason": reason}}); err != nil {
		return err
	}
	defer m.killSwitch.Invalidate()
	if err := m.Store.PutSetting(ctx, KillSwitchSetting, "true"); err != nil {
		return err
	}
	m.killSwitch.Invalidate()
	// The cut-off is read once the switch is on: an exchange here that still found it off took its
	// issue time before, so the revocation reaches its token (cut-offs compare to the millisecond);
	// one elsewhere that has not seen the switch yet does so within Propagation.
	now := m.now()
	if err := m.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeExchangeKind, Value: ModeImpersonation, At: now.Add(m.Propagation),
		ExpiresAt: sessionRevocationExpiry(now), Reason: "impersonation disabled by " + by + ": " + reason}); err != nil {
		return err
	}
	_, err := m.Store.EndExchangeSessions(ctx, store.SessionSelector{Kind: ModeImpersonation}, by, now)
	return err
}

// Enable turns impersonation back on (tokens ended by the switch stay inactive).
func (m *Sessions) Enable(ctx context.Context, by, reason string) error {
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeImpersonationOn, Actor: by, Details: map[string]any{"reason": reason}}); err != nil {
		return err
	}
	defer m.killSwitch.Invalidate()
	return m.Store.PutSetting(ctx, KillSwitchSetting, "false")
}

// RetirePrincipal makes every token of a principal that was just locked, disabled or deleted
// inactive for good: one revocation of the tokens about it (and, for a client, issued to it) until
// now, which unlocking later does not undo, and every session in which it acts ended. maxTokenLife is
// the longest an access token lives (the server's cap). The change itself is the caller's.
func (m *Sessions) RetirePrincipal(ctx context.Context, kind store.PrincipalKind, id, by, reason string, maxTokenLife time.Duration) error {
	now := m.now()
	until := tokens.KeepRevocationUntil(now.Add(max(maxTokenLife, MaxRefreshTTL) + m.Propagation))
	cutoff := now.Add(m.Propagation) // what a process deciding on a stale directory mints is reached too
	revs := []store.Revocation{{Kind: store.RevokeSubject, Value: id, At: cutoff, ExpiresAt: until, Reason: reason}}
	if kind == store.KindClient {
		revs = append(revs, store.Revocation{Kind: store.RevokeClient, Value: id, At: cutoff, ExpiresAt: until, Reason: reason})
	}
	for _, rev := range revs {
		if err := m.Tokens.Revoke(ctx, rev); err != nil {
			return err
		}
	}
	_, err := m.EndActor(ctx, id, by, reason)
	return err
}
