package tokens

import (
	"errors"
	"time"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
)

// MaxLineage bounds how many ancestors a token may carry: exchange chains deeper than this are
// refused, which keeps every token small enough for Signet (and its users) to parse.
const MaxLineage = 16

// ErrLineageTooDeep is returned by Derive when the parents' ancestry exceeds MaxLineage.
var ErrLineageTooDeep = errors.New("tokens: exchange chain too deep")

// Link is one ancestor of a token: the token (or grant) it was derived from, with enough of its
// content to tell whether a revocation, its principals' state or the kill switch has since reached
// it. A token is active only while each of its links would be (revocation follows lineage).
type Link struct {
	ID       string              `json:"jti"`
	Subject  string              `json:"sub"`
	Kind     store.PrincipalKind `json:"kind,omitempty"`
	Client   string              `json:"client_id,omitempty"`
	IssuedAt int64               `json:"iat"`
	Grant    string              `json:"grant,omitempty"`
	Session  string              `json:"sid,omitempty"`
	Exchange *Exchange           `json:"x,omitempty"`
	Actor    string              `json:"act,omitempty"`        // the outermost act.sub: the owner of Exchange's session
	ActorVia string              `json:"act_client,omitempty"` // the client the actor's token was issued to
}

// link is what descendants record of a, and what the checks of a itself go through too.
func (a *Access) link() Link {
	l := Link{ID: a.ID, Subject: a.Subject, Kind: a.SubjectKind, Client: a.ClientID, IssuedAt: a.IssuedAt.Unix(),
		Grant: a.GrantID, Session: a.SessionID, Exchange: a.Exchange}
	if a.Act != nil {
		l.Actor, l.ActorVia = a.Act.Subject, a.Act.ClientID
	}
	return l
}

// issued is when the token was issued and to what precision: the millisecond its ID carries (NewID)
// when that falls within its iat second, else the iat second. Tokens minted before IDs carried
// their time have random IDs, which name a time in that second only by a ~1e-11 chance.
func (l *Link) issued() (time.Time, time.Duration) {
	if t, ok := secrets.SortableIDTime(l.ID); ok && t.Unix() == l.IssuedAt {
		return t, time.Millisecond
	}
	return time.Unix(l.IssuedAt, 0), time.Second
}

// Derive is the lineage of a token derived from parents (the subject and actor tokens of an
// exchange; nil parents are skipped): each parent, then its own ancestors, without repeats.
func Derive(parents ...*Access) ([]Link, error) {
	var out []Link
	seen := map[string]bool{}
	add := func(l Link) {
		if l.ID == "" || seen[l.ID] {
			return
		}
		seen[l.ID] = true
		out = append(out, l)
	}
	for _, p := range parents {
		if p == nil {
			continue
		}
		add(p.link())
		for _, l := range p.Lineage {
			add(l)
		}
	}
	if len(out) > MaxLineage {
		return nil, ErrLineageTooDeep
	}
	return out, nil
}

// MaxSessionLife is the longest an exchange session (and so any refresh token) may last. A token's
// descendants can outlive it by at most this much: a session opened from it lasts no longer, and
// sessions opened from that session's tokens end with it.
const MaxSessionLife = 24 * time.Hour

// KeepRevocationUntil is how long a revocation of a token (or grant, subject, client) expiring at
// exp must be remembered: until every descendant it reaches has expired too.
func KeepRevocationUntil(exp time.Time) time.Time { return exp.Add(MaxSessionLife + time.Hour) }

// Sessions lists the exchange sessions a token and its ancestors belong to, each once, with the
// client its actor's token was issued to: everything derived from the token must still be allowed
// by each of those sessions' rules.
func (a *Access) Sessions() []Link {
	var out []Link
	seen := map[string]bool{}
	for _, l := range append([]Link{a.link()}, a.Lineage...) {
		if l.Exchange != nil && !seen[l.Exchange.Session] {
			seen[l.Exchange.Session] = true
			out = append(out, l)
		}
	}
	return out
}
