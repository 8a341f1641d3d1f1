package tokens

import (
	"context"
	"sync"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// revocations is the in-memory copy of the store's revocation entries, checked on every resolve.
type revocations struct {
	mu     sync.RWMutex
	byKind map[string]map[string]store.Revocation
}

func (r *revocations) replace(list []store.Revocation) {
	m := make(map[string]map[string]store.Revocation)
	for _, rev := range list {
		addTo(m, rev)
	}
	r.mu.Lock()
	r.byKind = m
	r.mu.Unlock()
}

func (r *revocations) add(rev store.Revocation) {
	r.mu.Lock()
	if r.byKind == nil {
		r.byKind = make(map[string]map[string]store.Revocation)
	}
	addTo(r.byKind, rev)
	r.mu.Unlock()
}

func addTo(m map[string]map[string]store.Revocation, rev store.Revocation) {
	byValue := m[rev.Kind]
	if byValue == nil {
		byValue = make(map[string]store.Revocation)
		m[rev.Kind] = byValue
	}
	if old, ok := byValue[rev.Value]; ok && old.At.After(rev.At) {
		return // keep the latest cut-off
	}
	byValue[rev.Value] = rev
}

// match returns the revocation that makes a inactive, if any. Token, grant and session entries
// revoke every matching token; subject and client entries revoke tokens issued at or before At.
func (r *revocations) match(a *Access) (store.Revocation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.byKind) == 0 {
		return store.Revocation{}, false
	}
	check := func(kind, value string, cutoff bool) (store.Revocation, bool) {
		if value == "" {
			return store.Revocation{}, false
		}
		rev, ok := r.byKind[kind][value]
		if !ok || (cutoff && a.IssuedAt.After(rev.At)) {
			return store.Revocation{}, false
		}
		return rev, true
	}
	for _, c := range []struct {
		kind, value string
		cutoff      bool
	}{
		{store.RevokeTokenID, a.ID, false},
		{store.RevokeGrant, a.GrantID, false},
		{store.RevokeSession, a.SessionID, false},
		{store.RevokeSubject, a.Subject, true},
		{store.RevokeClient, a.ClientID, true},
	} {
		if rev, ok := check(c.kind, c.value, c.cutoff); ok {
			return rev, true
		}
	}
	if a.Exchange != nil {
		if rev, ok := check(store.RevokeSession, a.Exchange.Session, false); ok {
			return rev, true
		}
		if rev, ok := check(store.RevokeExchangeKind, a.Exchange.Kind, true); ok {
			return rev, true
		}
	}
	return store.Revocation{}, false
}

// reload replaces the set with the store's current entries.
func (r *revocations) reload(ctx context.Context, st store.Store, now time.Time) error {
	list, err := st.ListRevocations(ctx, now)
	if err != nil {
		return err
	}
	r.replace(list)
	return nil
}
