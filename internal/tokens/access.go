// Package tokens mints Signet's access tokens (RFC 9068 JWTs or opaque sgn_at_ values) and resolves a
// presented token to what it says and whether it is still active: signature, expiry, revocation.
// Resolution results are cached in process, so a hot token costs no store read and no signature
// check; revocations are checked on every call from an in-memory set kept current by the change feed.
package tokens

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Actor is the RFC 8693 "act" claim: who acts, possibly nested for delegation chains.
type Actor struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id,omitempty"`
	Act      *Actor `json:"act,omitempty"`
}

// Exchange marks a token derived from a token-exchange session.
type Exchange struct {
	Kind    string `json:"kind"` // impersonation or delegation
	Session string `json:"session"`
}

// Access is an access token's content, whatever its format.
type Access struct {
	ID          string // jti
	Issuer      string
	Subject     string
	SubjectKind store.PrincipalKind
	ClientID    string
	Audience    []string
	Scope       []string
	IssuedAt    time.Time
	NotBefore   time.Time
	ExpiresAt   time.Time
	GrantID     string
	SessionID   string
	Act         *Actor
	Exchange    *Exchange
	Lineage     []Link // the tokens it was derived from, nearest first (see Derive)
	Format      string // store.FormatJWT or store.FormatOpaque

	// Rendered lets the introspection endpoint keep its encoded answer with a cached token: the
	// answer for an active token is the same for every caller allowed to see it.
	Rendered atomic.Pointer[[]byte]
	// standingAt is the principals' directory version (+1) at which every principal of the token
	// and its lineage was last seen in good standing; 0: never.
	standingAt atomic.Uint64
}

// claims is the JWT form of Access (RFC 9068 names plus Signet's).
type claims struct {
	Issuer      string    `json:"iss"`
	Subject     string    `json:"sub"`
	Audience    []string  `json:"aud"`
	ExpiresAt   int64     `json:"exp"`
	IssuedAt    int64     `json:"iat"`
	NotBefore   int64     `json:"nbf"`
	ID          string    `json:"jti"`
	ClientID    string    `json:"client_id"`
	Scope       string    `json:"scope,omitempty"`
	SubjectKind string    `json:"signet_sub_kind,omitempty"`
	SessionID   string    `json:"sid,omitempty"`
	GrantID     string    `json:"signet_grant,omitempty"`
	Act         *Actor    `json:"act,omitempty"`
	Exchange    *Exchange `json:"signet_exchange,omitempty"`
	Lineage     []Link    `json:"signet_lineage,omitempty"`
}

func (a *Access) claims() claims {
	return claims{
		Issuer: a.Issuer, Subject: a.Subject, Audience: a.Audience,
		ExpiresAt: a.ExpiresAt.Unix(), IssuedAt: a.IssuedAt.Unix(), NotBefore: a.NotBefore.Unix(),
		ID: a.ID, ClientID: a.ClientID, Scope: strings.Join(a.Scope, " "),
		SubjectKind: string(a.SubjectKind), SessionID: a.SessionID, GrantID: a.GrantID,
		Act: a.Act, Exchange: a.Exchange, Lineage: a.Lineage,
	}
}

// storedExtra is what an opaque token keeps in store.Token.Claims.
type storedExtra struct {
	Act      *Actor    `json:"act,omitempty"`
	Exchange *Exchange `json:"signet_exchange,omitempty"`
	Lineage  []Link    `json:"signet_lineage,omitempty"`
}

// toStored is what the store keeps of an opaque token of the given kind with a's content: its
// keyed hash, never its value. fromStored reads it back.
func toStored(a *Access, hash []byte, id, kind string, exp time.Time) (*store.Token, error) {
	t := &store.Token{
		Hash: hash, ID: id, Kind: kind, ClientID: a.ClientID,
		SubjectKind: a.SubjectKind, Subject: a.Subject, Scope: a.Scope, Audience: a.Audience,
		IssuedAt: a.IssuedAt, ExpiresAt: exp, GrantID: a.GrantID, SessionID: a.SessionID,
	}
	if a.Act != nil || a.Exchange != nil || len(a.Lineage) > 0 {
		extra, err := json.Marshal(storedExtra{Act: a.Act, Exchange: a.Exchange, Lineage: a.Lineage})
		if err != nil {
			return nil, err
		}
		t.Claims = extra
	}
	return t, nil
}

func fromStored(t *store.Token, issuer string) (*Access, error) {
	a := &Access{
		ID: t.ID, Issuer: issuer, Subject: t.Subject, SubjectKind: t.SubjectKind, ClientID: t.ClientID,
		Audience: t.Audience, Scope: t.Scope, IssuedAt: t.IssuedAt, NotBefore: t.IssuedAt, ExpiresAt: t.ExpiresAt,
		GrantID: t.GrantID, SessionID: t.SessionID, Format: store.FormatOpaque,
	}
	if len(t.Claims) > 0 {
		var x storedExtra
		if err := json.Unmarshal(t.Claims, &x); err != nil {
			return nil, err
		}
		a.Act, a.Exchange, a.Lineage = x.Act, x.Exchange, x.Lineage
	}
	return a, nil
}

// HasAudience reports whether aud is one of the token's audiences.
func (a *Access) HasAudience(aud string) bool {
	for _, x := range a.Audience {
		if x == aud {
			return true
		}
	}
	return false
}

// Family names what revoking a refresh token takes with it: its grant (the refresh token, its
// successors and every access token they produced), or the token alone when it has no grant.
func Family(t *store.Token) (kind, value string) {
	if t.GrantID == "" {
		return store.RevokeTokenID, t.ID
	}
	return store.RevokeGrant, t.GrantID
}
