package tokens_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/tokens"
)

const issuer = "https://signet.test"

// principals is a directory whose answers the test sets, counting the questions.
type principals struct {
	mu      sync.Mutex
	why     map[string]string // "kind:id" → why it may not hold tokens
	version uint64
	asked   []string
}

func (p *principals) Standing(_ context.Context, kind store.PrincipalKind, id string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, string(kind)+":"+id)
	return p.why[string(kind)+":"+id], nil
}

func (p *principals) Version() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// set changes a principal's standing, as the directory does when a user is locked.
func (p *principals) set(kind store.PrincipalKind, id, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.why[string(kind)+":"+id] = why
	p.version++
}

// fixture is a token service on the real SQLite store with real signing keys, at a time the test
// sets.
type fixture struct {
	st   store.Store
	km   *keys.Manager
	sk   *secrets.Keys
	dir  *principals
	now  time.Time
	svc  *tokens.Service
	ctx  context.Context
	base tokens.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sk, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	km := keys.NewManager(st, sk, time.Hour)
	if _, err := km.Ensure(ctx, keys.ES256); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, km: km, sk: sk, dir: &principals{why: map[string]string{}}, now: time.Now().Truncate(time.Second), ctx: ctx}
	f.base = tokens.Config{Issuer: issuer, Store: st, Keys: km, Secrets: sk, Leeway: 30 * time.Second, Principals: f.dir,
		Now: func() time.Time { return f.now }}
	f.svc = tokens.New(f.base)
	if err := f.svc.LoadRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// access is a token's content: a user at a client, valid for ten minutes from now.
func (f *fixture) access() *tokens.Access {
	return &tokens.Access{Subject: "u-dana", SubjectKind: store.KindUser, ClientID: "c-app", Audience: []string{"c-api"},
		Scope: []string{"read", "write"}, IssuedAt: f.now, ExpiresAt: f.now.Add(10 * time.Minute)}
}

func (f *fixture) issue(t *testing.T, a *tokens.Access, format string) string {
	t.Helper()
	raw, err := f.svc.Issue(f.ctx, a, format, keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// resolve returns the Inactive code of raw ("" when active).
func (f *fixture) resolve(t *testing.T, raw string) (*tokens.Access, string, string) {
	t.Helper()
	a, inactive, err := f.svc.Resolve(f.ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if inactive != nil {
		if a != nil {
			t.Fatalf("an inactive token came with its content as active: %v", inactive)
		}
		return nil, inactive.Code, inactive.Detail
	}
	return a, "", ""
}

// TestIssuedTokensResolveToTheirContent: what is issued, in either format, is what resolving says,
// every claim and the lineage included.
func TestIssuedTokensResolveToTheirContent(t *testing.T) {
	for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
		t.Run(format, func(t *testing.T) {
			f := newFixture(t)
			a := f.access()
			a.GrantID, a.SessionID = "gr-1", "s-1"
			a.Act = &tokens.Actor{Subject: "u-sam", ClientID: "c-spa", Act: &tokens.Actor{Subject: "sa-bot"}}
			a.Exchange = &tokens.Exchange{Kind: "impersonation", Session: "xs-1"}
			a.Lineage = []tokens.Link{{ID: "p-1", Subject: "u-dana", Kind: store.KindUser, Client: "c-web", IssuedAt: f.now.Add(-time.Minute).Unix(), Grant: "gr-0"}}
			raw := f.issue(t, a, format)
			if a.ID == "" || a.Issuer != issuer || !a.NotBefore.Equal(a.IssuedAt) || a.Format != format {
				t.Fatalf("Issue must fill ID, issuer, nbf and format: %+v", a)
			}
			if format == store.FormatOpaque && !strings.HasPrefix(raw, secrets.AccessTokenPrefix) {
				t.Fatalf("opaque token %q", raw)
			}
			got, code, detail := f.resolve(t, raw)
			if code != "" {
				t.Fatalf("a fresh token is inactive: %s %s", code, detail)
			}
			type view struct {
				ID, Issuer, Subject, ClientID, GrantID, SessionID, Format string
				Kind                                                      store.PrincipalKind
				Audience, Scope                                           []string
				Times                                                     [3]int64
				Act                                                       *tokens.Actor
				Exchange                                                  *tokens.Exchange
				Lineage                                                   []tokens.Link
			}
			see := func(a *tokens.Access) view {
				return view{a.ID, a.Issuer, a.Subject, a.ClientID, a.GrantID, a.SessionID, a.Format, a.SubjectKind, a.Audience, a.Scope,
					[3]int64{a.IssuedAt.Unix(), a.NotBefore.Unix(), a.ExpiresAt.Unix()}, a.Act, a.Exchange, a.Lineage}
			}
			if !reflect.DeepEqual(see(got), see(a)) {
				t.Fatalf("resolved\n %+v\nissued\n %+v", see(got), see(a))
			}
			if _, err := f.svc.Issue(f.ctx, f.access(), "saml", keys.ES256); err == nil || !strings.Contains(err.Error(), "saml") {
				t.Fatalf("an unknown format: %v", err)
			}
		})
	}
}

// TestExplicitNotBeforeIsKept: a JWT issued for later keeps its nbf and is not active before it
// (beyond the leeway), and is within the leeway. (Opaque tokens are valid from their issue time:
// the store keeps no nbf, and nothing issues them for later.)
func TestExplicitNotBeforeIsKept(t *testing.T) {
	f := newFixture(t)
	later := f.access()
	later.NotBefore = f.now.Add(time.Minute)
	soon := f.access()
	soon.NotBefore = f.now.Add(20 * time.Second)
	for _, format := range []string{store.FormatJWT} {
		if _, code, _ := f.resolve(t, f.issue(t, later, format)); code != "not_yet_valid" {
			t.Fatalf("%s: a token valid in a minute: %q", format, code)
		}
		if _, code, _ := f.resolve(t, f.issue(t, soon, format)); code != "" {
			t.Fatalf("%s: a token valid within the leeway: %q", format, code)
		}
	}
}

// TestInactiveTokens: each way a presented value is not an active access token, with its reason.
func TestInactiveTokens(t *testing.T) {
	f := newFixture(t)
	jwt := f.issue(t, f.access(), store.FormatJWT)
	parts := strings.Split(jwt, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	other := tokens.New(tokens.Config{Issuer: "https://other.test", Store: f.st, Keys: f.km, Secrets: f.sk, Now: f.base.Now})
	foreign, err := other.Issue(f.ctx, f.access(), store.FormatJWT, keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	idToken, err := f.svc.IssueIDToken(f.access(), keys.ES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	refresh, err := f.svc.IssueRefresh(f.ctx, f.access(), f.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, raw, code string }{
		{"garbage", "not-a-token", "malformed"},
		{"two dots of garbage", "a.b.c", "malformed"},
		{"an opaque value never issued", secrets.NewOpaqueToken(secrets.AccessTokenPrefix), "unknown"},
		{"a refresh token", refresh, "wrong_type"},
		{"an ID token", idToken, "wrong_type"},
		{"another issuer's token", foreign, "foreign"},
		{"a forged signature", tampered, "invalid_signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second answer may come from a cache: it must say the same
				if _, code, detail := f.resolve(t, tc.raw); code != tc.code {
					t.Fatalf("code %q (%s), want %q", code, detail, tc.code)
				}
			}
		})
	}
}

// TestExpiryHasNoLeeway: our own tokens expire at exp exactly, cached or not.
func TestExpiryHasNoLeeway(t *testing.T) {
	for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
		t.Run(format, func(t *testing.T) {
			f := newFixture(t)
			a := f.access()
			raw := f.issue(t, a, format)
			f.now = a.ExpiresAt.Add(-time.Second)
			if _, code, _ := f.resolve(t, raw); code != "" {
				t.Fatalf("a second before exp: %q", code)
			}
			f.now = a.ExpiresAt
			if _, code, _ := f.resolve(t, raw); code != "expired" {
				t.Fatalf("at exp: %q", code)
			}
		})
	}
}

// TestCacheCountsAndSweeps: the second resolution of a token is a cache hit; sweeping drops expired
// tokens only.
func TestCacheCountsAndSweeps(t *testing.T) {
	f := newFixture(t)
	short, long := f.access(), f.access()
	short.ExpiresAt = f.now.Add(time.Minute)
	for _, a := range []*tokens.Access{short, long} {
		raw := f.issue(t, a, store.FormatJWT)
		f.resolve(t, raw)
		f.resolve(t, raw)
	}
	if hits, misses, size := f.svc.CacheStats(); hits != 2 || misses != 2 || size != 2 {
		t.Fatalf("hits %d misses %d size %d", hits, misses, size)
	}
	if n := f.svc.Sweep(f.now.Add(2 * time.Minute)); n != 1 {
		t.Fatalf("swept %d, want the expired one", n)
	}
	if _, _, size := f.svc.CacheStats(); size != 1 {
		t.Fatalf("%d cached after the sweep", size)
	}
}

// TestRevocationAppliesAtOnceAndFromOtherReplicas: a revocation made here applies at once; one
// another replica made applies when the change feed reports a revocation change (or a resync),
// not before.
func TestRevocationAppliesAtOnceAndFromOtherReplicas(t *testing.T) {
	f := newFixture(t)
	a := f.access()
	raw := f.issue(t, a, store.FormatJWT)
	f.resolve(t, raw)
	if err := f.svc.Revoke(f.ctx, store.Revocation{Kind: store.RevokeTokenID, Value: a.ID, At: f.now, ExpiresAt: f.now.Add(time.Hour), Reason: "leaked"}); err != nil {
		t.Fatal(err)
	}
	if _, code, detail := f.resolve(t, raw); code != "revoked" || !strings.Contains(detail, "leaked") || !strings.Contains(detail, a.ID) {
		t.Fatalf("after Revoke: %q %s", code, detail)
	}
	for _, change := range []string{store.ChangeRevocation, store.ChangeResync} {
		b := f.access()
		rawB := f.issue(t, b, store.FormatOpaque)
		f.resolve(t, rawB)
		if err := f.st.AddRevocation(f.ctx, &store.Revocation{Kind: store.RevokeTokenID, Value: b.ID, At: f.now, ExpiresAt: f.now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		f.svc.Invalidate(store.Change{Kind: store.ChangeUser, Key: "u-dana"})
		if _, code, _ := f.resolve(t, rawB); code != "" {
			t.Fatalf("an unrelated change reloaded the revocations: %q", code)
		}
		f.svc.Invalidate(store.Change{Kind: change})
		if _, code, _ := f.resolve(t, rawB); code != "revoked" {
			t.Fatalf("after a %v change: %q", change, code)
		}
	}
}

// TestRevokingARefreshTokenByIDTakesItsGrant: the tokens refreshed from it carry its grant, not its
// ID, so revoking it by ID must reach them; revoking an access token by ID reaches that one only.
func TestRevokingARefreshTokenByIDTakesItsGrant(t *testing.T) {
	f := newFixture(t)
	a := f.access()
	a.GrantID = "gr-1"
	rt, err := f.svc.IssueRefresh(f.ctx, a, f.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	old, _, inactive, err := f.svc.ResolveRefresh(f.ctx, rt)
	if err != nil || inactive != nil {
		t.Fatalf("a fresh refresh token: %v %v", inactive, err)
	}
	sameGrant, otherGrant := f.access(), f.access()
	sameGrant.GrantID, otherGrant.GrantID = "gr-1", "gr-2"
	rawSame, rawOther := f.issue(t, sameGrant, store.FormatJWT), f.issue(t, otherGrant, store.FormatJWT)
	if err := f.svc.Revoke(f.ctx, store.Revocation{Kind: store.RevokeTokenID, Value: old.ID, At: f.now, ExpiresAt: f.now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := f.resolve(t, rawSame); code != "revoked" {
		t.Fatalf("a token of the revoked refresh token's grant: %q", code)
	}
	if _, code, _ := f.resolve(t, rawOther); code != "" {
		t.Fatalf("a token of another grant: %q", code)
	}
	if _, _, inactive, _ := f.svc.ResolveRefresh(f.ctx, rt); inactive == nil || inactive.Code != "revoked" {
		t.Fatalf("the refresh token itself: %v", inactive)
	}
}

// TestRefreshTokens: how a presented refresh token resolves: its own record, a rotation that makes
// the old one reused, and every value that is not one.
func TestRefreshTokens(t *testing.T) {
	f := newFixture(t)
	a := f.access()
	a.GrantID = "gr-1"
	rt, err := f.svc.IssueRefresh(f.ctx, a, f.now.Add(time.Hour))
	if err != nil || !strings.HasPrefix(rt, secrets.RefreshTokenPrefix) {
		t.Fatalf("refresh token %q: %v", rt, err)
	}
	old, content, inactive, err := f.svc.ResolveRefresh(f.ctx, rt)
	if err != nil || inactive != nil || old.Kind != store.TokenRefresh || content.Subject != "u-dana" || content.GrantID != "gr-1" || !old.ExpiresAt.Equal(f.now.Add(time.Hour)) {
		t.Fatalf("resolve: %+v %+v %v %v", old, content, inactive, err)
	}
	next := f.access()
	next.GrantID = "gr-1"
	rt2, err := f.svc.RotateRefresh(f.ctx, old, next, nil)
	if err != nil {
		t.Fatal(err)
	}
	code := func(raw string) string {
		t.Helper()
		_, _, inactive, err := f.svc.ResolveRefresh(f.ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if inactive == nil {
			return ""
		}
		return inactive.Code
	}
	if c := code(rt); c != "reused" {
		t.Fatalf("the rotated refresh token: %q", c)
	}
	if c := code(rt2); c != "" {
		t.Fatalf("its successor: %q", c)
	}
	if _, err := f.svc.RotateRefresh(f.ctx, old, next, nil); err == nil {
		t.Fatal("rotating a used refresh token twice must fail")
	}
	for _, tc := range []struct{ name, raw, code string }{
		{"garbage", "nope", "malformed"},
		{"an access JWT", f.issue(t, f.access(), store.FormatJWT), "wrong_type"},
		{"an opaque access token", f.issue(t, f.access(), store.FormatOpaque), "wrong_type"},
		{"never issued", secrets.NewOpaqueToken(secrets.RefreshTokenPrefix), "unknown"},
	} {
		if c := code(tc.raw); c != tc.code {
			t.Errorf("%s: %q, want %q", tc.name, c, tc.code)
		}
	}
	f.now = f.now.Add(time.Hour)
	if c := code(rt2); c != "expired" {
		t.Fatalf("past its expiry: %q", c)
	}
}

// TestIDTokens: an ID token resolves for the client it was issued to, with the scope of its
// origin, and for no other client.
func TestIDTokens(t *testing.T) {
	f := newFixture(t)
	a := f.access()
	raw, err := f.svc.IssueIDToken(a, keys.ES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, inactive, err := f.svc.ResolveIDToken(f.ctx, raw, "c-app")
	if err != nil || inactive != nil || got.Subject != "u-dana" || got.SubjectKind != store.KindUser || got.ClientID != "c-app" ||
		strings.Join(got.Scope, " ") != "read write" || got.ID != a.ID || !got.ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("ID token for its client: %+v %v %v", got, inactive, err)
	}
	for _, tc := range []struct{ name, raw, client, code string }{
		{"another client", raw, "c-other", "audience"},
		{"not a JWT", "sgn_at_x", "c-app", "malformed"},
		{"an access token", f.issue(t, f.access(), store.FormatJWT), "c-app", "wrong_type"},
	} {
		if _, inactive, err := f.svc.ResolveIDToken(f.ctx, tc.raw, tc.client); err != nil || inactive == nil || inactive.Code != tc.code {
			t.Errorf("%s: %v %v, want %s", tc.name, inactive, err, tc.code)
		}
	}
	f.now = a.ExpiresAt
	if _, inactive, _ := f.svc.ResolveIDToken(f.ctx, raw, "c-app"); inactive == nil || inactive.Code != "expired" {
		t.Fatalf("an expired ID token: %v", inactive)
	}
}

// TestPrincipalsStanding: a token is inactive while its subject, its client or the principals of any
// token it was derived from may not hold tokens; a service account acting alone is its own client;
// the answers are reused until the directory changes.
func TestPrincipalsStanding(t *testing.T) {
	f := newFixture(t)
	parent := f.access()
	parent.ClientID = "c-web"
	f.issue(t, parent, store.FormatJWT)
	child := f.access()
	child.Lineage = []tokens.Link{{ID: parent.ID, Subject: "u-dana", Kind: store.KindUser, Client: "c-web", IssuedAt: parent.IssuedAt.Unix()}}
	raw := f.issue(t, child, store.FormatJWT)
	asked := func() []string {
		f.dir.mu.Lock()
		defer f.dir.mu.Unlock()
		out := f.dir.asked
		f.dir.asked = nil
		return out
	}
	if _, code, _ := f.resolve(t, raw); code != "" {
		t.Fatalf("in good standing: %q", code)
	}
	if got := strings.Join(asked(), " "); got != "user:u-dana client:c-app user:u-dana client:c-web" {
		t.Fatalf("asked about %s", got)
	}
	if _, code, _ := f.resolve(t, raw); code != "" || len(asked()) != 0 {
		t.Fatal("an unchanged directory must not be asked again")
	}
	f.dir.set(store.KindClient, "c-web", "client c-web is disabled")
	if _, code, detail := f.resolve(t, raw); code != "principal" || detail != "client c-web is disabled (token "+parent.ID+", which this token was derived from)" {
		t.Fatalf("an ancestor's client disabled: %q %s", code, detail)
	}
	f.dir.set(store.KindClient, "c-web", "")
	f.dir.set(store.KindUser, "u-dana", "user dana is locked")
	if _, code, detail := f.resolve(t, raw); code != "principal" || detail != "user dana is locked" {
		t.Fatalf("the subject locked: %q %s", code, detail)
	}
	f.dir.set(store.KindUser, "u-dana", "")
	f.dir.set(store.KindClient, "c-app", "client c-app was deleted")
	if _, code, detail := f.resolve(t, raw); code != "principal" || detail != "client c-app was deleted" {
		t.Fatalf("its client deleted: %q %s", code, detail)
	}
	f.dir.set(store.KindClient, "c-app", "")
	asked()
	alone := &tokens.Access{Subject: "sa-bot", SubjectKind: store.KindServiceAccount, ClientID: "sa-bot", IssuedAt: f.now, ExpiresAt: f.now.Add(time.Minute)}
	if _, code, _ := f.resolve(t, f.issue(t, alone, store.FormatJWT)); code != "" {
		t.Fatalf("a service account alone: %q", code)
	}
	if got := strings.Join(asked(), " "); got != "serviceaccount:sa-bot" {
		t.Fatalf("a service account acting alone is asked about as %s", got)
	}
}

// TestCorruptRecordsAreFaultsOrRefusals: a stored record whose claims cannot be read is a server
// fault, never an active token; a stored record of another kind behind an access token's prefix,
// or a JWT of ours whose claims have the wrong types, is not an active access token.
func TestCorruptRecordsAreFaultsOrRefusals(t *testing.T) {
	f := newFixture(t)
	store1 := func(raw, kind string, claims []byte) {
		t.Helper()
		rec := &store.Token{Hash: f.sk.HashToken(raw), ID: secrets.NewID(), Kind: kind, ClientID: "c-app", SubjectKind: store.KindUser, Subject: "u-dana",
			IssuedAt: f.now, ExpiresAt: f.now.Add(time.Hour), Claims: claims}
		if err := f.st.CreateToken(f.ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	refreshBehindAccessPrefix := secrets.NewOpaqueToken(secrets.AccessTokenPrefix)
	store1(refreshBehindAccessPrefix, store.TokenRefresh, nil)
	if _, code, detail := f.resolve(t, refreshBehindAccessPrefix); code != "wrong_type" || !strings.Contains(detail, "is a refresh") {
		t.Fatalf("a refresh record behind sgn_at_: %q %s", code, detail)
	}
	badAccess := secrets.NewOpaqueToken(secrets.AccessTokenPrefix)
	store1(badAccess, store.TokenAccess, []byte(`{"act":"not an object"}`))
	if a, inactive, err := f.svc.Resolve(f.ctx, badAccess); err == nil || a != nil || inactive != nil || !strings.Contains(err.Error(), "stored claims") {
		t.Fatalf("unreadable stored claims: %v %v %v", a, inactive, err)
	}
	badRefresh := secrets.NewOpaqueToken(secrets.RefreshTokenPrefix)
	store1(badRefresh, store.TokenRefresh, []byte(`{"act":"not an object"}`))
	if _, _, inactive, err := f.svc.ResolveRefresh(f.ctx, badRefresh); err == nil || inactive != nil || !strings.Contains(err.Error(), "stored claims") {
		t.Fatalf("unreadable stored refresh claims: %v %v", inactive, err)
	}
	wrongTypes, err := f.km.Sign(keys.ES256, tokens.AccessTokenType, map[string]any{"iss": issuer, "sub": "u-dana", "aud": []string{"c-api"},
		"exp": f.now.Add(time.Hour).Unix(), "iat": f.now.Unix(), "jti": "j-1", "scope": 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, code, detail := f.resolve(t, wrongTypes); code != "malformed" || !strings.Contains(detail, "claims do not have access token types") {
		t.Fatalf("a JWT of ours with a numeric scope: %q %s", code, detail)
	}
	if got := (&tokens.Inactive{Code: "revoked", Detail: "by jti x"}).String(); got != "revoked: by jti x" {
		t.Fatalf("Inactive.String() = %q", got)
	}
}

// lookupFails is a store whose look-up of a token by ID fails (a lost connection).
type lookupFails struct{ store.Store }

func (lookupFails) GetTokenByID(context.Context, string) (*store.Token, error) {
	return nil, errors.New("connection lost")
}

// TestRevokeByIDNeedsToKnowWhatItRevokes: revoking by token ID first looks the token up (a refresh
// token takes its grant); when the look-up fails, nothing is recorded and the caller hears of it.
// An ID the store does not know (a JWT access token) is revoked as given.
func TestRevokeByIDNeedsToKnowWhatItRevokes(t *testing.T) {
	f := newFixture(t)
	cfg := f.base
	cfg.Store = lookupFails{f.st}
	svc := tokens.New(cfg)
	rev := store.Revocation{Kind: store.RevokeTokenID, Value: "j-1", At: f.now, ExpiresAt: f.now.Add(time.Hour)}
	if err := svc.Revoke(f.ctx, rev); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("a failed look-up: %v", err)
	}
	if list, err := f.st.ListRevocations(f.ctx, f.now); err != nil || len(list) != 0 {
		t.Fatalf("a revocation was recorded without knowing what it revokes: %+v %v", list, err)
	}
	if err := f.svc.Revoke(f.ctx, rev); err != nil {
		t.Fatal(err)
	}
	if list, err := f.st.ListRevocations(f.ctx, f.now); err != nil || len(list) != 1 || list[0].Kind != store.RevokeTokenID || list[0].Value != "j-1" {
		t.Fatalf("an unknown ID is revoked as given: %+v %v", list, err)
	}
}
