package exchange_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// directory is a principal directory held in maps; fail makes every look-up a server fault.
type directory struct {
	users    map[string]*store.User
	accounts map[string]*store.ServiceAccount
	clients  map[string]*store.Client
	fail     error
}

func (d *directory) User(_ context.Context, id string) (*store.User, error) {
	if d.fail != nil {
		return nil, d.fail
	}
	if u, ok := d.users[id]; ok {
		return u, nil
	}
	return nil, store.ErrNotFound
}

func (d *directory) ServiceAccount(_ context.Context, id string) (*store.ServiceAccount, error) {
	if d.fail != nil {
		return nil, d.fail
	}
	if sa, ok := d.accounts[id]; ok {
		return sa, nil
	}
	return nil, store.ErrNotFound
}

func (d *directory) Client(_ context.Context, id string) (*store.Client, error) {
	if d.fail != nil {
		return nil, d.fail
	}
	if c, ok := d.clients[id]; ok {
		return c, nil
	}
	return nil, store.ErrNotFound
}

func newDirectory() *directory {
	return &directory{
		users: map[string]*store.User{
			"u-dana": {ID: "u-dana", Username: "dana", Roles: []string{"customer"}},
			"u-lee":  {ID: "u-lee", Username: "lee", Roles: []string{"customer"}, Locked: true},
		},
		accounts: map[string]*store.ServiceAccount{
			"sa-bot": {ID: "sa-bot", Name: "bot", Roles: []string{"agent"}},
			"sa-old": {ID: "sa-old", Name: "old", Disabled: true},
		},
		clients: map[string]*store.Client{
			"c-app": {ID: "c-app", Name: "App", Roles: []string{"introspect-any"}},
			"c-off": {ID: "c-off", Disabled: true},
		},
	}
}

// TestModeFor: a user acting, or a subject named by user ID, is impersonation; anything else with
// an actor is delegation.
func TestModeFor(t *testing.T) {
	for _, tc := range []struct {
		actor store.PrincipalKind
		byID  bool
		want  string
	}{
		{store.KindUser, false, exchange.ModeImpersonation},
		{store.KindUser, true, exchange.ModeImpersonation},
		{store.KindServiceAccount, true, exchange.ModeImpersonation},
		{store.KindServiceAccount, false, exchange.ModeDelegation},
		{store.KindClient, false, exchange.ModeDelegation},
	} {
		if got := exchange.ModeFor(string(tc.actor), tc.byID); got != tc.want {
			t.Errorf("ModeFor(%s, %v) = %s, want %s", tc.actor, tc.byID, got, tc.want)
		}
	}
}

// TestPartiesFromTheDirectory: each kind of principal becomes a party with its name, roles and
// standing (locked users, disabled accounts and clients are Locked); a missing one is
// ErrNoSuchParty, and a failing directory is a fault, never "missing".
func TestPartiesFromTheDirectory(t *testing.T) {
	ctx := context.Background()
	dir := newDirectory()
	for _, tc := range []struct {
		kind store.PrincipalKind
		id   string
		want exchange.Party
	}{
		{store.KindUser, "u-dana", exchange.Party{Kind: "user", ID: "u-dana", Name: "dana", Roles: []string{"customer"}}},
		{store.KindUser, "u-lee", exchange.Party{Kind: "user", ID: "u-lee", Name: "lee", Roles: []string{"customer"}, Locked: true}},
		{store.KindServiceAccount, "sa-bot", exchange.Party{Kind: "serviceaccount", ID: "sa-bot", Name: "bot", Roles: []string{"agent"}}},
		{store.KindServiceAccount, "sa-old", exchange.Party{Kind: "serviceaccount", ID: "sa-old", Name: "old", Locked: true}},
		{store.KindClient, "c-app", exchange.Party{Kind: "client", ID: "c-app", Name: "c-app", Roles: []string{"introspect-any"}}},
		{store.KindClient, "c-off", exchange.Party{Kind: "client", ID: "c-off", Name: "c-off", Locked: true}},
	} {
		got, err := exchange.PartyByKind(ctx, dir, tc.kind, tc.id)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PartyByKind(%s, %s) = %+v, %v; want %+v", tc.kind, tc.id, got, err, tc.want)
		}
		if got, err := exchange.PartyByID(ctx, dir, tc.id); err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PartyByID(%s) = %+v, %v; want %+v", tc.id, got, err, tc.want)
		}
	}
	for _, kind := range []store.PrincipalKind{store.KindUser, store.KindServiceAccount, store.KindClient, "robot"} {
		if _, err := exchange.PartyByKind(ctx, dir, kind, "nobody"); !errors.Is(err, exchange.ErrNoSuchParty) {
			t.Errorf("a missing %s: %v", kind, err)
		}
	}
	if _, err := exchange.PartyByID(ctx, dir, "nobody"); !errors.Is(err, exchange.ErrNoSuchParty) {
		t.Errorf("PartyByID of nobody: %v", err)
	}
	unknown, err := exchange.SubjectByUserID(ctx, dir, "u-nobody")
	if err != nil || !reflect.DeepEqual(unknown, exchange.Party{Kind: "user", ID: "u-nobody", Unknown: true}) {
		t.Errorf("an unknown user ID is an unknown party, not an error: %+v %v", unknown, err)
	}
	if known, err := exchange.SubjectByUserID(ctx, dir, "u-dana"); err != nil || known.Unknown || known.Name != "dana" {
		t.Errorf("a known user ID: %+v %v", known, err)
	}

	fault := errors.New("connection lost")
	broken := &directory{fail: fault}
	if _, err := exchange.PartyByKind(ctx, broken, store.KindUser, "u-dana"); !errors.Is(err, fault) {
		t.Errorf("a failing directory: %v", err)
	}
	if _, err := exchange.PartyByID(ctx, broken, "u-dana"); !errors.Is(err, fault) {
		t.Errorf("PartyByID on a failing directory: %v", err)
	}
	if p, err := exchange.SubjectByUserID(ctx, broken, "u-dana"); !errors.Is(err, fault) || p.Unknown {
		t.Errorf("SubjectByUserID on a failing directory must not say unknown: %+v %v", p, err)
	}
}

// TestPartyOfToken: a token's principal carries the token's scope, audience, expiry, client and
// exchange session; a token whose principal is gone is ErrNoSuchParty.
func TestPartyOfToken(t *testing.T) {
	ctx := context.Background()
	dir := newDirectory()
	exp := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	a := &tokens.Access{Subject: "u-dana", SubjectKind: store.KindUser, ClientID: "c-web", Scope: []string{"read"}, Audience: []string{"c-api"},
		ExpiresAt: exp, Exchange: &tokens.Exchange{Kind: exchange.ModeImpersonation, Session: "xs-1"}}
	got, err := exchange.PartyOfToken(ctx, dir, a)
	want := exchange.Party{Kind: "user", ID: "u-dana", Name: "dana", Roles: []string{"customer"}, HasToken: true, Scope: []string{"read"},
		Audience: []string{"c-api"}, ExpiresAt: exp, TokenClient: "c-web", Session: "xs-1"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("party %+v %v\nwant %+v", got, err, want)
	}
	a.Exchange = nil
	if got, _ := exchange.PartyOfToken(ctx, dir, a); got.Session != "" {
		t.Fatalf("a token of no session: %+v", got)
	}
	a.Subject = "u-gone"
	if _, err := exchange.PartyOfToken(ctx, dir, a); !errors.Is(err, exchange.ErrNoSuchParty) {
		t.Fatalf("a deleted user's token: %v", err)
	}
}
