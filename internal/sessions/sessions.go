// Package sessions ends delegation and impersonation: one session, every session of an actor or a
// subject, or all impersonation at once (the kill switch). Each action is audited first and then
// revokes every token derived from the sessions, so they are inactive on every replica within the
// change-feed interval. The CLI and the admin API both call it.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
)

// Revoker applies a revocation (tokens.Service).
type Revoker interface {
	Revoke(ctx context.Context, rev store.Revocation) error
}

// Manager ends exchange sessions.
type Manager struct {
	Store  store.Store
	Tokens Revoker
	Audit  *audit.Log
	Now    func() time.Time
	// Applied, when set, is called after a change so this process applies it at once (other
	// replicas follow the change feed).
	Applied func()
}

func (m *Manager) applied() {
	if m.Applied != nil {
		m.Applied()
	}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Active lists sessions that have not ended or expired.
func (m *Manager) Active(ctx context.Context) ([]store.ExchangeSession, error) {
	return m.Store.ListExchangeSessions(ctx, m.now())
}

// End ends one session.
func (m *Manager) End(ctx context.Context, id, by, reason string) error {
	x, err := m.Store.GetExchangeSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no exchange session %q (see `signet impersonation list`)", id)
	}
	if err != nil {
		return err
	}
	return m.end(ctx, []store.ExchangeSession{*x}, by, reason)
}

// EndActor ends every active session in which id acts; EndSubject every one about id.
func (m *Manager) EndActor(ctx context.Context, id, by, reason string) (int, error) {
	return m.endWhere(ctx, func(x store.ExchangeSession) bool { return x.Actor == id }, by, reason)
}

func (m *Manager) EndSubject(ctx context.Context, id, by, reason string) (int, error) {
	return m.endWhere(ctx, func(x store.ExchangeSession) bool { return x.Subject == id }, by, reason)
}

func (m *Manager) endWhere(ctx context.Context, match func(store.ExchangeSession) bool, by, reason string) (int, error) {
	active, err := m.Active(ctx)
	if err != nil {
		return 0, err
	}
	var sel []store.ExchangeSession
	for _, x := range active {
		if match(x) {
			sel = append(sel, x)
		}
	}
	return len(sel), m.end(ctx, sel, by, reason)
}

// end audits, revokes the sessions' tokens and marks the sessions ended.
func (m *Manager) end(ctx context.Context, list []store.ExchangeSession, by, reason string) error {
	if len(list) == 0 {
		return nil
	}
	now := m.now()
	events := make([]audit.Event, len(list))
	for i, x := range list {
		events[i] = audit.Event{Type: audit.TypeSessionEnded, Actor: by, Subject: x.Subject, Client: x.Client,
			Details: map[string]any{"session": x.ID, "kind": x.Kind, "session_actor": x.Actor, "reason": reason}}
	}
	if err := m.Audit.Record(ctx, events...); err != nil {
		return err
	}
	for _, x := range list {
		rev := store.Revocation{Kind: store.RevokeSession, Value: x.ID, At: now, ExpiresAt: x.ExpiresAt.Add(time.Hour), Reason: "session ended by " + by + ": " + reason}
		if err := m.Tokens.Revoke(ctx, rev); err != nil {
			return err
		}
		if err := m.Store.EndExchangeSession(ctx, x.ID, by, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Disabled reports whether the kill switch is on.
func (m *Manager) Disabled(ctx context.Context) (bool, error) {
	v, err := m.Store.GetSetting(ctx, oauth.KillSwitchSetting)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return v == "true", err
}

// Disable flips the kill switch: no new impersonation, and every impersonation token issued so
// far is inactive. Delegation is not affected.
func (m *Manager) Disable(ctx context.Context, by, reason string) error {
	now := m.now()
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeImpersonationOff, Actor: by, Details: map[string]any{"reason": reason}}); err != nil {
		return err
	}
	if err := m.Store.PutSetting(ctx, oauth.KillSwitchSetting, "true"); err != nil {
		return err
	}
	defer m.applied()
	if err := m.Tokens.Revoke(ctx, store.Revocation{Kind: store.RevokeExchangeKind, Value: "impersonation", At: now,
		ExpiresAt: now.Add(2 * time.Hour), Reason: "impersonation disabled by " + by + ": " + reason}); err != nil {
		return err
	}
	active, err := m.Active(ctx)
	if err != nil {
		return err
	}
	for _, x := range active {
		if x.Kind == "impersonation" {
			if err := m.Store.EndExchangeSession(ctx, x.ID, by, now); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// Enable turns impersonation back on (tokens ended by the switch stay inactive).
func (m *Manager) Enable(ctx context.Context, by, reason string) error {
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeImpersonationOn, Actor: by, Details: map[string]any{"reason": reason}}); err != nil {
		return err
	}
	defer m.applied()
	return m.Store.PutSetting(ctx, oauth.KillSwitchSetting, "false")
}
