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
// "At or before" is judged at the finest precision both sides have: At is truncated to that of the
// token's issue time or session's opening (the millisecond; the second for tokens whose ID carries
// no time). So whatever was minted before a cut-off is reached by it, and what was minted after it
// only when both fall within the same millisecond (second).
func (r *revocations) matchLink(l Link) (store.Revocation, bool) {
	// check finds the entry of kind for value; a precision (> 0) makes it a cut-off that reaches
	// only what was issued (opened) at or before its At.
	check := func(kind, value string, issued time.Time, precision time.Duration) (store.Revocation, bool) {
		if value == "" {
			return store.Revocation{}, false
		}
		rev, ok := r.byKind[kind][value]
		if !ok || (precision > 0 && issued.After(rev.At.Truncate(precision))) {
			return store.Revocation{}, false
		}
		return rev, true
	}
	issued, precision := l.issued()
	for _, c := range [...]struct {
		kind, value string
		precision   time.Duration
	}{
		{store.RevokeTokenID, l.ID, 0},
		{store.RevokeGrant, l.Grant, 0},
		{store.RevokeSession, l.Session, 0},
		{store.RevokeSubject, l.Subject, precision},
		{store.RevokeClient, l.Client, precision},
	} {
		if rev, ok := check(c.kind, c.value, issued, c.precision); ok {
			return rev, true
		}
	}
	if x := l.Exchange; x != nil {
		if rev, ok := check(store.RevokeSession, x.Session, time.Time{}, 0); ok {
			return rev, true
		}
		if rev, ok := check(store.RevokeExchangeKind, x.Kind, issued, precision); ok {
			return rev, true
		}
		opened := SessionOpened(x.Session)
		if opened.Truncate(precision).After(issued) {
			// No session opens after its tokens: the ID carries no time (see SessionOpened).
			opened = time.Time{}
		}
		for _, c := range [...]struct{ kind, value string }{
			{store.RevokeSessionsOfActor, l.Actor}, {store.RevokeSessionsOfSubject, l.Subject}, {store.RevokeSessionsOfClient, l.Client},
		} {
			if rev, ok := check(c.kind, c.value, opened, time.Millisecond); ok {
				return rev, true
			}
		}
	}
	return store.Revocation{}, false
}

// SessionOpened is when an exchange session was opened, to the millisecond, read from its
// time-ordered ID ("xs-" and a secrets.NewSortableID). IDs that do not carry a time give the zero
// time: they were opened before any cut-off. Sessions from before time-ordered IDs have random IDs
// that read as a random time; matchLink treats one later than the token as carrying none.
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
