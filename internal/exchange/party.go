package exchange

import (
	"context"
	"errors"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// Directory is where parties are looked up (directory.Directory).
type Directory interface {
	User(ctx context.Context, id string) (*store.User, error)
	ServiceAccount(ctx context.Context, id string) (*store.ServiceAccount, error)
	Client(ctx context.Context, id string) (*store.Client, error)
}

// ErrNoSuchParty is returned when a token's principal or a session's actor no longer exists.
var ErrNoSuchParty = errors.New("exchange: the principal no longer exists")

// ModeFor chooses the mode of an exchange with an actor, from the request alone: a user acting, or a
// subject named by user ID (no token of the subject at all), is impersonation; a service or client
// acting with the subject's token is delegation. The token endpoint and the dry run both use it.
func ModeFor(actorKind string, subjectByUserID bool) string {
	if actorKind == string(store.KindUser) || subjectByUserID {
		return ModeImpersonation
	}
	return ModeDelegation
}

// PartyOfToken describes the principal of a verified token, with its standing now and, when the
// token was itself obtained by exchange, the session it belongs to. ErrNoSuchParty when the
// principal is gone.
func PartyOfToken(ctx context.Context, dir Directory, a *tokens.Access) (Party, error) {
	p, err := PartyByKind(ctx, dir, a.SubjectKind, a.Subject)
	if err != nil {
		return p, err
	}
	p.HasToken, p.Scope, p.Audience, p.ExpiresAt, p.TokenClient = true, a.Scope, a.Audience, a.ExpiresAt, a.ClientID
	if a.Exchange != nil {
		p.Session = a.Exchange.Session
	}
	return p, nil
}

// SubjectByUserID is an impersonation target named by user ID. An unknown ID is not an error: it is
// decided exactly like a user no rule names.
func SubjectByUserID(ctx context.Context, dir Directory, id string) (Party, error) {
	p, err := PartyByKind(ctx, dir, store.KindUser, id)
	if errors.Is(err, ErrNoSuchParty) {
		return Party{Kind: string(store.KindUser), ID: id, Unknown: true}, nil
	}
	return p, err
}

// PartyByID is the principal with this ID, whichever kind it is (a session's actor).
func PartyByID(ctx context.Context, dir Directory, id string) (Party, error) {
	for _, kind := range []store.PrincipalKind{store.KindUser, store.KindServiceAccount, store.KindClient} {
		p, err := PartyByKind(ctx, dir, kind, id)
		if !errors.Is(err, ErrNoSuchParty) {
			return p, err
		}
	}
	return Party{}, ErrNoSuchParty
}

// PartyByKind is the principal of this kind and ID with its roles and standing (locked users,
// disabled service accounts and clients are Locked).
func PartyByKind(ctx context.Context, dir Directory, kind store.PrincipalKind, id string) (Party, error) {
	p := Party{Kind: string(kind), ID: id}
	var err error
	switch kind {
	case store.KindUser:
		var u *store.User
		if u, err = dir.User(ctx, id); err == nil {
			p.Name, p.Roles, p.Locked = u.Username, u.Roles, u.Locked
		}
	case store.KindServiceAccount:
		var sa *store.ServiceAccount
		if sa, err = dir.ServiceAccount(ctx, id); err == nil {
			p.Name, p.Roles, p.Locked = sa.Name, sa.Roles, sa.Disabled
		}
	case store.KindClient:
		var c *store.Client
		if c, err = dir.Client(ctx, id); err == nil {
			p.Name, p.Roles, p.Locked = c.ID, c.Roles, c.Disabled
		}
	default:
		return p, ErrNoSuchParty
	}
	if errors.Is(err, store.ErrNotFound) {
		return p, ErrNoSuchParty
	}
	return p, err
}
