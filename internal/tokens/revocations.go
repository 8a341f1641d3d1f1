package tokens

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/signet-id/signet/internal/secrets"
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

// match returns the revocation that makes a inactive, if any: one that reaches a itself or any of
// its ancestors (revocation follows lineage).
func (r *revocations) match(a *Access) (store.Revocation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.byKind) == 0 {
		return store.Revocation{}, false
	}
	if rev, ok := r.matchLink(a.link()); ok {
		return rev, true
	}
	for i := range a.Lineage {
		if rev, ok := r.matchLink(a.Lineage[i]); ok {
			return rev, true
		}
	}
	return store.Revocation{}, false
}

// matchLink checks one token of a lineage. Token, grant and session entries revoke every matching
// token; subject, client and exchange-kind entries those issued at or before At; the entries that
// end every session of an actor, a subject or a client reach the tokens of sessions opened at or
// before At, whenever the token itself was minted (a refresh after the cut-off included).
func (r *revocations) matchLink(l Link) (store.Revocation, bool) {
	check := func(kind, value string, cutoff time.Time) (store.Revocation, bool) {
		if value == "" {
			return store.Revocation{}, false
		}
		rev, ok := r.byKind[kind][value]
		if !ok || (!cutoff.IsZero() && cutoff.After(rev.At)) {
			return store.Revocation{}, false
		}
		return rev, true
	}
	issued := l.issued()
	for _, c := range [...]struct {
		kind, value string
		cutoff      time.Time
	}{
		{store.RevokeTokenID, l.ID, time.Time{}},
		{store.RevokeGrant, l.Grant, time.Time{}},
		{store.RevokeSession, l.Session, time.Time{}},
		{store.RevokeSubject, l.Subject, issued},
		{store.RevokeClient, l.Client, issued},
	} {
		if rev, ok := check(c.kind, c.value, c.cutoff); ok {
			return rev, true
		}
	}
	if x := l.Exchange; x != nil {
		if rev, ok := check(store.RevokeSession, x.Session, time.Time{}); ok {
			return rev, true
		}
		if rev, ok := check(store.RevokeExchangeKind, x.Kind, issued); ok {
			return rev, true
		}
		opened := SessionOpened(x.Session)
		for _, c := range [...]struct{ kind, value string }{
			{store.RevokeSessionsOfActor, l.Actor}, {store.RevokeSessionsOfSubject, l.Subject}, {store.RevokeSessionsOfClient, l.Client},
		} {
			if rev, ok := check(c.kind, c.value, opened); ok {
				return rev, true
			}
		}
	}
	return store.Revocation{}, false
}

// SessionOpened is when an exchange session was opened, read from its time-ordered ID ("xs-" and a
// secrets.NewSortableID). IDs that do not carry a time (sessions from before time-ordered IDs) give
// the zero time: they were opened before any cut-off.
func SessionOpened(id string) time.Time {
	_, sortable, _ := strings.Cut(id, "-")
	t, _ := secrets.SortableIDTime(sortable)
	return t
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
