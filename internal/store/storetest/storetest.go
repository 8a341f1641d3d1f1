// Package storetest is the conformance suite every store.Store backend must pass: one set of
// behaviours, run against SQLite and PostgreSQL alike, so a backend is "implement the interface,
// run the suite".
package storetest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/signet-id/signet/internal/store"
)

// AuditKey is the audit key every store under test must be opened with (sqlstore.WithAuditKey), so
// that the suite can check the chain's HMACs. It is what secrets derives from the master key
// 00 01 02 … 1f (the fixed vector in the secrets tests).
var AuditKey = mustHex("dec33e08301b18dda3afaf95bf2ebf7a6026b93296fcf5601681103fe8f43d4f")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Run runs the suite; open returns a fresh, empty, migrated store for each sub-test, opened with
// AuditKey.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"users", testUsers},
		{"service accounts", testServiceAccounts},
		{"clients", testClients},
		{"roles and grants", testRoles},
		{"public keys", testPublicKeys},
		{"signing keys rotate", testSigningKeys},
		{"opaque tokens", testTokens},
		{"revocations", testRevocations},
		{"revocations mark stored tokens", testRevocationMarks},
		{"refresh tokens rotate once", testRefreshRotation},
		{"assertion replay", testAssertionIDs},
		{"change feed", testChanges},
		{"settings", testSettings},
		{"prune", testPrune},
		{"concurrent token writes are group-committed", testConcurrentTokens},
		{"audit log is chained", testAudit},
		{"a failing write in a group commit fails alone", testGroupCommitIsolation},
		{"audit fields any request can fill are stored", testAuditOddText},
		{"audit chain golden vectors", testAuditGolden},
		{"audit chain is keyed from the first event", testAuditKeyedFrom},
		{"exchange rules and sessions", testExchange},
		{"sign-in settings of users, clients and roles", testSignInSettings},
		{"login requests yield one answer", testLoginRequests},
		{"browser sessions", testBrowserSessions},
		{"authorization codes are redeemed once", testAuthCodes},
		{"clients of a browser session", testSessionClients},
		{"consents", testConsents},
		{"TOTP steps are accepted once", testTOTP},
		{"recovery codes", testRecoveryCodes},
		{"failed sign-ins are counted in windows", testSignInFailures},
		{"prune forgets old sign-in records", testSignInPrune},
		{"deleting a user takes what is kept for them", testDeleteUser},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var ctx = context.Background()

// at is a fixed instant with microseconds, to check time precision round-trips.
var at = time.Date(2026, 11, 24, 12, 30, 15, 123456000, time.UTC)

func is(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: want %v, got %v", what, target, err)
	}
}

func ok(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testUsers(t *testing.T, s store.Store) {
	u := &store.User{ID: "u1", Username: "dana", Email: "dana@example.com", DisplayName: "Dana Lee", PasswordHash: "$argon2id$x", Roles: []string{"support"},
		PasswordChangeRequired: true, CreatedAt: at, UpdatedAt: at}
	ok(t, s.CreateUser(ctx, u), "create")
	got, err := s.GetUser(ctx, "u1")
	ok(t, err, "get")
	if got.Username != "dana" || got.Email != "dana@example.com" || got.DisplayName != "Dana Lee" || got.PasswordHash != "$argon2id$x" || !got.CreatedAt.Equal(at) || !slices.Equal(got.Roles, []string{"support"}) ||
		!got.PasswordChangeRequired || got.MFARequired {
		t.Fatalf("round trip: %+v", got)
	}
	byName, err := s.GetUserByUsername(ctx, "dana")
	ok(t, err, "by username")
	if byName.ID != "u1" {
		t.Fatal("by username returned another user")
	}
	is(t, s.CreateUser(ctx, &store.User{ID: "u2", Username: "dana", CreatedAt: at, UpdatedAt: at}), store.ErrConflict, "duplicate username")
	is(t, s.CreateUser(ctx, &store.User{ID: "u3", Username: "other", Email: "dana@example.com", CreatedAt: at, UpdatedAt: at}), store.ErrConflict, "duplicate email")
	is(t, s.CreateUser(ctx, &store.User{ID: "u1", Username: "third", CreatedAt: at, UpdatedAt: at}), store.ErrConflict, "duplicate ID")
	ok(t, s.CreateUser(ctx, &store.User{ID: "u4", Username: "noemail1", CreatedAt: at, UpdatedAt: at}), "no email")
	ok(t, s.CreateUser(ctx, &store.User{ID: "u5", Username: "noemail2", CreatedAt: at, UpdatedAt: at}), "second user without email")
	is(t, s.CreateUser(ctx, &store.User{ID: "u6", Username: "x", Roles: []string{"nosuch"}, CreatedAt: at, UpdatedAt: at}), store.ErrNotFound, "unknown role")
	if _, err := s.GetUser(ctx, "u6"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a create that failed on its roles must not leave the user behind")
	}
	_, err = s.GetUser(ctx, "nobody")
	is(t, err, store.ErrNotFound, "missing user")
	got.Locked, got.DisplayName, got.PasswordChangeRequired, got.MFARequired = true, "Dana L.", false, true
	ok(t, s.UpdateUser(ctx, got), "update")
	got, _ = s.GetUser(ctx, "u1")
	if !got.Locked || got.DisplayName != "Dana L." || got.PasswordChangeRequired || !got.MFARequired {
		t.Fatalf("update lost: %+v", got)
	}
	is(t, s.UpdateUser(ctx, &store.User{ID: "nobody", Username: "n"}), store.ErrNotFound, "update missing")
	list, err := s.ListUsers(ctx)
	ok(t, err, "list")
	if len(list) != 3 || list[0].Username != "dana" || !slices.Equal(list[0].Roles, []string{"support"}) || list[1].Roles != nil {
		t.Fatalf("list: %+v", list)
	}
}

func testServiceAccounts(t *testing.T, s store.Store) {
	grants := []string{"client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"}
	sa := &store.ServiceAccount{ID: "sa1", Name: "ci-bot", Description: "CI", GrantTypes: grants, SecretSalt: []byte("salt"), SecretHash: []byte("hash"), Roles: []string{"introspector"}, CreatedAt: at, UpdatedAt: at}
	ok(t, s.CreateServiceAccount(ctx, sa), "create")
	got, err := s.GetServiceAccount(ctx, "sa1")
	ok(t, err, "get")
	if got.Name != "ci-bot" || string(got.SecretSalt) != "salt" || string(got.SecretHash) != "hash" || !slices.Equal(got.Roles, []string{"introspector"}) ||
		!slices.Equal(got.GrantTypes, grants) {
		t.Fatalf("round trip: %+v", got)
	}
	if byName, err := s.GetServiceAccountByName(ctx, "ci-bot"); err != nil || byName.ID != "sa1" || !slices.Equal(byName.GrantTypes, grants) {
		t.Fatalf("by name: %+v %v", byName, err)
	}
	is(t, s.CreateServiceAccount(ctx, &store.ServiceAccount{ID: "sa2", Name: "ci-bot", CreatedAt: at, UpdatedAt: at}), store.ErrConflict, "duplicate name")
	ok(t, s.CreateServiceAccount(ctx, &store.ServiceAccount{ID: "sa3", Name: "plain", CreatedAt: at, UpdatedAt: at}), "without secret")
	plain, _ := s.GetServiceAccount(ctx, "sa3")
	if len(plain.SecretHash) != 0 || plain.Roles != nil || plain.GrantTypes != nil {
		t.Fatalf("empty secret, roles and grants must come back empty: %+v", plain)
	}
	list, err := s.ListServiceAccounts(ctx)
	ok(t, err, "list")
	if len(list) != 2 || list[0].ID != "sa1" || !slices.Equal(list[0].GrantTypes, grants) || list[1].GrantTypes != nil {
		t.Fatalf("list: %+v", list)
	}
	got.Disabled = true
	got.GrantTypes = []string{"urn:ietf:params:oauth:grant-type:token-exchange"}
	ok(t, s.UpdateServiceAccount(ctx, got), "update")
	got, _ = s.GetServiceAccount(ctx, "sa1")
	if !got.Disabled || !slices.Equal(got.GrantTypes, []string{"urn:ietf:params:oauth:grant-type:token-exchange"}) {
		t.Fatalf("update lost: %+v", got)
	}
	list, _ = s.ListServiceAccounts(ctx)
	if !slices.Equal(list[0].GrantTypes, got.GrantTypes) {
		t.Fatalf("list after update: %+v", list)
	}
	got.GrantTypes = []string{}
	ok(t, s.UpdateServiceAccount(ctx, got), "update to no grants")
	if got, _ = s.GetServiceAccount(ctx, "sa1"); got.GrantTypes != nil {
		t.Fatalf("an emptied list must come back empty: %+v", got)
	}
	ok(t, s.CreatePublicKey(ctx, &store.PublicKey{ID: "k1", OwnerKind: store.KindServiceAccount, OwnerID: "sa1", Algorithm: "RS256", PublicKeyPEM: []byte("pem"), CreatedAt: at}), "key")
	ok(t, s.DeleteServiceAccount(ctx, "sa1"), "delete")
	_, err = s.GetPublicKey(ctx, "k1")
	is(t, err, store.ErrNotFound, "keys go with their account")
	is(t, s.DeleteServiceAccount(ctx, "sa1"), store.ErrNotFound, "delete twice")
	list, _ = s.ListServiceAccounts(ctx)
	if len(list) != 1 || list[0].ID != "sa3" {
		t.Fatalf("list after delete: %+v", list)
	}
}

func newClient(id string) *store.Client {
	return &store.Client{ID: id, Name: id, Type: store.ClientAPI, AuthMethod: store.AuthSecretBasic, SecretSalt: []byte("s"), SecretHash: []byte("h"),
		RedirectURIs: []string{"https://app/cb"}, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, Audiences: []string{"api"},
		AccessTokenFormat: store.FormatJWT, AccessTokenAlg: "ES256", AccessTokenTTL: 10 * time.Minute, RefreshTokenTTL: time.Hour, CreatedAt: at, UpdatedAt: at}
}

func testClients(t *testing.T, s store.Store) {
	c := newClient("app")
	c.Roles = []string{"admin"}
	c.ThirdParty, c.PostLogoutRedirectURIs, c.BackchannelLogoutURI, c.RequireMFA = true, []string{"https://app/bye"}, "https://app/bcl", true
	ok(t, s.CreateClient(ctx, c), "create")
	got, err := s.GetClient(ctx, "app")
	ok(t, err, "get")
	c.Roles = []string{"admin"}
	if got.Name != c.Name || got.Type != c.Type || got.AuthMethod != c.AuthMethod || !slices.Equal(got.RedirectURIs, c.RedirectURIs) ||
		!slices.Equal(got.GrantTypes, c.GrantTypes) || !slices.Equal(got.Scopes, c.Scopes) || !slices.Equal(got.Audiences, c.Audiences) ||
		got.AccessTokenTTL != c.AccessTokenTTL || got.RefreshTokenTTL != c.RefreshTokenTTL || got.AccessTokenAlg != "ES256" ||
		!slices.Equal(got.Roles, []string{"admin"}) || string(got.SecretHash) != "h" ||
		!got.ThirdParty || !slices.Equal(got.PostLogoutRedirectURIs, []string{"https://app/bye"}) || got.BackchannelLogoutURI != "https://app/bcl" || !got.RequireMFA {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
	is(t, s.CreateClient(ctx, newClient("app")), store.ErrConflict, "duplicate ID")
	got.Audiences, got.Disabled, got.AccessTokenFormat = nil, true, store.FormatOpaque
	got.ThirdParty, got.PostLogoutRedirectURIs, got.BackchannelLogoutURI, got.RequireMFA = false, nil, "", false
	ok(t, s.UpdateClient(ctx, got), "update")
	got, _ = s.GetClient(ctx, "app")
	if got.Audiences != nil || !got.Disabled || got.AccessTokenFormat != store.FormatOpaque ||
		got.ThirdParty || got.PostLogoutRedirectURIs != nil || got.BackchannelLogoutURI != "" || got.RequireMFA {
		t.Fatalf("update lost: %+v", got)
	}
	ok(t, s.CreateClient(ctx, newClient("api")), "second")
	list, _ := s.ListClients(ctx)
	if len(list) != 2 || list[0].ID != "api" || !slices.Equal(list[1].Roles, []string{"admin"}) {
		t.Fatalf("list: %+v", list)
	}
	ok(t, s.DeleteClient(ctx, "app"), "delete")
	_, err = s.GetClient(ctx, "app")
	is(t, err, store.ErrNotFound, "deleted")
	is(t, s.UpdateClient(ctx, newClient("gone")), store.ErrNotFound, "update missing")
}

func testRoles(t *testing.T, s store.Store) {
	roles, err := s.ListRoles(ctx)
	ok(t, err, "list")
	byName := map[string]store.Role{}
	for _, r := range roles {
		byName[r.Name] = r
	}
	if !slices.Contains(byName["admin"].Permissions, "introspect:any") || !slices.Equal(byName["introspector"].Permissions, []string{"signet:introspect"}) || !byName["support"].BuiltIn || !slices.Equal(byName["introspect-any"].Permissions, []string{"signet:introspect", "introspect:any"}) || !byName["introspect-any"].BuiltIn {
		t.Fatalf("built-in roles: %+v", roles)
	}
	ok(t, s.PutRole(ctx, &store.Role{Name: "auditor", Description: "reads audit", Permissions: []string{"signet:audit"}, RequireMFA: true}), "put")
	r, err := s.GetRole(ctx, "auditor")
	ok(t, err, "get")
	if r.Description != "reads audit" || r.BuiltIn || !r.RequireMFA || byName["admin"].RequireMFA {
		t.Fatalf("role: %+v", r)
	}
	ok(t, s.CreateClient(ctx, newClient("c1")), "client")
	ok(t, s.GrantRole(ctx, store.KindClient, "c1", "auditor"), "grant")
	ok(t, s.GrantRole(ctx, store.KindClient, "c1", "auditor"), "grant is idempotent")
	is(t, s.GrantRole(ctx, store.KindClient, "c1", "nosuch"), store.ErrNotFound, "unknown role")
	is(t, s.GrantRole(ctx, store.KindClient, "nobody", "auditor"), store.ErrNotFound, "unknown principal")
	c, _ := s.GetClient(ctx, "c1")
	if !slices.Equal(c.Roles, []string{"auditor"}) {
		t.Fatalf("roles after grant: %v", c.Roles)
	}
	ok(t, s.RevokeRole(ctx, store.KindClient, "c1", "auditor"), "revoke")
	is(t, s.RevokeRole(ctx, store.KindClient, "c1", "auditor"), store.ErrNotFound, "revoke twice")
	_, err = s.GetRole(ctx, "nosuch")
	is(t, err, store.ErrNotFound, "missing role")

	// Roles users define: created once, deleted only when nobody holds them and never built in.
	ok(t, s.CreateRole(ctx, &store.Role{Name: "customer", Description: "people who buy", Permissions: []string{"shop:buy"}}), "create")
	is(t, s.CreateRole(ctx, &store.Role{Name: "customer"}), store.ErrConflict, "create twice")
	is(t, s.CreateRole(ctx, &store.Role{Name: "admin"}), store.ErrConflict, "create over a built-in role")
	if r, err := s.GetRole(ctx, "customer"); err != nil || r.Description != "people who buy" || !slices.Equal(r.Permissions, []string{"shop:buy"}) || r.BuiltIn || r.RequireMFA {
		t.Fatalf("created role: %+v %v", r, err)
	}
	ok(t, s.CreateUser(ctx, &store.User{ID: "u-dana", Username: "dana", Roles: []string{"customer"}, CreatedAt: at, UpdatedAt: at}), "holder")
	err = s.DeleteRole(ctx, "customer")
	is(t, err, store.ErrConflict, "delete a granted role")
	if !strings.Contains(err.Error(), "user u-dana") {
		t.Errorf("the refusal names no holder: %v", err)
	}
	is(t, s.DeleteRole(ctx, "support"), store.ErrConflict, "delete a built-in role")
	is(t, s.DeleteRole(ctx, "nosuch"), store.ErrNotFound, "delete a missing role")
	last, _ := s.LastChangeSeq(ctx)
	ok(t, s.RevokeRole(ctx, store.KindUser, "u-dana", "customer"), "revoke the last grant")
	ok(t, s.DeleteRole(ctx, "customer"), "delete")
	_, err = s.GetRole(ctx, "customer")
	is(t, err, store.ErrNotFound, "deleted role")
	changes, _ := s.Changes(ctx, last, 10)
	if !slices.ContainsFunc(changes, func(c store.Change) bool { return c.Kind == store.ChangeRole && c.Key == "customer" }) {
		t.Errorf("deleting a role appends no change for caches: %+v", changes)
	}
	if _, err := s.GetRole(ctx, "support"); err != nil {
		t.Errorf("a refused delete removed the built-in role: %v", err)
	}
}

func testPublicKeys(t *testing.T, s store.Store) {
	ok(t, s.CreateServiceAccount(ctx, &store.ServiceAccount{ID: "sa1", Name: "bot", CreatedAt: at, UpdatedAt: at}), "owner")
	exp := at.Add(24 * time.Hour)
	k := &store.PublicKey{ID: "k1", OwnerKind: store.KindServiceAccount, OwnerID: "sa1", Algorithm: "RS256", PublicKeyPEM: []byte("-----BEGIN PUBLIC KEY-----"), ExpiresAt: exp, CreatedAt: at}
	ok(t, s.CreatePublicKey(ctx, k), "create")
	ok(t, s.CreatePublicKey(ctx, &store.PublicKey{ID: "k2", OwnerKind: store.KindServiceAccount, OwnerID: "sa1", Algorithm: "ES256", PublicKeyPEM: []byte("p"), CreatedAt: at.Add(time.Second)}), "second")
	is(t, s.CreatePublicKey(ctx, &store.PublicKey{ID: "k1", OwnerKind: store.KindServiceAccount, OwnerID: "sa1", PublicKeyPEM: []byte("p"), CreatedAt: at}), store.ErrConflict, "duplicate kid")
	is(t, s.CreatePublicKey(ctx, &store.PublicKey{ID: "k9", OwnerKind: store.KindServiceAccount, OwnerID: "nobody", PublicKeyPEM: []byte("p"), CreatedAt: at}), store.ErrNotFound, "unknown owner")
	got, err := s.GetPublicKey(ctx, "k1")
	ok(t, err, "get")
	if !got.ExpiresAt.Equal(exp) || !got.RevokedAt.IsZero() || string(got.PublicKeyPEM) != "-----BEGIN PUBLIC KEY-----" || got.OwnerKind != store.KindServiceAccount {
		t.Fatalf("round trip: %+v", got)
	}
	list, _ := s.ListPublicKeys(ctx, store.KindServiceAccount, "sa1")
	if len(list) != 2 || list[0].ID != "k1" {
		t.Fatalf("list: %+v", list)
	}
	if other, _ := s.ListPublicKeys(ctx, store.KindClient, "sa1"); len(other) != 0 {
		t.Fatal("keys are listed per owner kind")
	}
	ok(t, s.RevokePublicKey(ctx, "k1", at.Add(time.Minute)), "revoke")
	got, _ = s.GetPublicKey(ctx, "k1")
	if !got.RevokedAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("revoked_at %v", got.RevokedAt)
	}
	is(t, s.RevokePublicKey(ctx, "nokey", at), store.ErrNotFound, "revoke missing")
}

func signingKey(id, alg, state string, created time.Time) *store.SigningKey {
	k := &store.SigningKey{ID: id, Algorithm: alg, State: state, PrivateKey: []byte("sealed-" + id), PublicJWK: []byte(`{"kid":"` + id + `"}`), CreatedAt: created}
	if state == store.SigningActive {
		k.ActivatedAt = created
	}
	return k
}

func states(t *testing.T, s store.Store) map[string]string {
	list, err := s.ListSigningKeys(ctx)
	ok(t, err, "list signing keys")
	m := map[string]string{}
	for _, k := range list {
		m[k.ID] = k.State
	}
	return m
}

func testSigningKeys(t *testing.T, s store.Store) {
	ok(t, s.CreateSigningKey(ctx, signingKey("a1", "ES256", store.SigningActive, at)), "active")
	ok(t, s.CreateSigningKey(ctx, signingKey("n1", "ES256", store.SigningNext, at.Add(time.Second))), "next")
	ok(t, s.CreateSigningKey(ctx, signingKey("r1", "RS256", store.SigningActive, at.Add(2*time.Second))), "other alg")
	// One active and one next key per algorithm: a second one (replicas starting together) conflicts.
	is(t, s.CreateSigningKey(ctx, signingKey("a9", "ES256", store.SigningActive, at)), store.ErrConflict, "second active key")
	is(t, s.CreateSigningKey(ctx, signingKey("n9", "ES256", store.SigningNext, at)), store.ErrConflict, "second next key")
	list, _ := s.ListSigningKeys(ctx)
	if len(list) != 3 || list[0].ID != "a1" || string(list[0].PrivateKey) != "sealed-a1" || !list[0].ActivatedAt.Equal(at) {
		t.Fatalf("list oldest first: %+v", list)
	}
	now := at.Add(time.Hour)
	ok(t, s.RotateSigningKey(ctx, "ES256", signingKey("n2", "ES256", store.SigningNext, now), now), "rotate")
	if st := states(t, s); st["a1"] != store.SigningRetired || st["n1"] != store.SigningActive || st["n2"] != store.SigningNext || st["r1"] != store.SigningActive {
		t.Fatalf("after rotation: %v", st)
	}
	list, _ = s.ListSigningKeys(ctx)
	for _, k := range list {
		if k.ID == "a1" && !k.RetiredAt.Equal(now) || k.ID == "n1" && !k.ActivatedAt.Equal(now) {
			t.Fatalf("rotation times: %+v", k)
		}
	}
	// Without a next key, the new key becomes active directly.
	ok(t, s.RotateSigningKey(ctx, "RS256", signingKey("r2", "RS256", store.SigningNext, now), now), "rotate without next")
	if st := states(t, s); st["r1"] != store.SigningRetired || st["r2"] != store.SigningActive {
		t.Fatalf("rotation without next: %v", st)
	}
	n, err := s.DeleteSigningKeys(ctx, now.Add(time.Second))
	ok(t, err, "delete")
	if st := states(t, s); n != 2 || len(st) != 3 {
		t.Fatalf("deleted %d, left %v", n, st)
	}
}

func token(id string, hash byte, exp time.Time) *store.Token {
	return &store.Token{Hash: []byte{hash, 1, 2, 3}, ID: id, Kind: store.TokenAccess, ClientID: "app", SubjectKind: store.KindUser, Subject: "u1",
		Scope: []string{"read", "write"}, Audience: []string{"api"}, IssuedAt: at, ExpiresAt: exp, GrantID: "g1", SessionID: "s1", Claims: []byte(`{"act":{"sub":"x"}}`)}
}

func testTokens(t *testing.T, s store.Store) {
	tk := token("t1", 1, at.Add(time.Hour))
	ok(t, s.CreateToken(ctx, tk), "create")
	got, err := s.GetToken(ctx, tk.Hash)
	ok(t, err, "get")
	if got.ID != "t1" || got.Kind != store.TokenAccess || got.SubjectKind != store.KindUser || !slices.Equal(got.Scope, tk.Scope) ||
		!slices.Equal(got.Audience, tk.Audience) || !got.IssuedAt.Equal(at) || got.GrantID != "g1" || got.SessionID != "s1" || string(got.Claims) != string(tk.Claims) || !got.RevokedAt.IsZero() {
		t.Fatalf("round trip: %+v", got)
	}
	byID, err := s.GetTokenByID(ctx, "t1")
	ok(t, err, "by id")
	if string(byID.Hash) != string(tk.Hash) {
		t.Fatal("by id returned another token")
	}
	is(t, s.CreateToken(ctx, token("t1", 2, at)), store.ErrConflict, "duplicate id")
	is(t, s.CreateToken(ctx, token("t2", 1, at)), store.ErrConflict, "duplicate hash")
	_, err = s.GetToken(ctx, []byte("nope"))
	is(t, err, store.ErrNotFound, "unknown hash")
	plain := token("t3", 3, at.Add(time.Hour))
	plain.Claims, plain.Scope = nil, nil
	ok(t, s.CreateToken(ctx, plain), "no claims")
	got, _ = s.GetToken(ctx, plain.Hash)
	if len(got.Claims) != 0 || got.Scope != nil {
		t.Fatalf("empty claims and scope must come back empty: %+v", got)
	}
}

func testRevocations(t *testing.T, s store.Store) {
	ok(t, s.CreateToken(ctx, token("t1", 1, at.Add(time.Hour))), "token")
	ok(t, s.AddRevocation(ctx, &store.Revocation{Kind: store.RevokeTokenID, Value: "t1", At: at, ExpiresAt: at.Add(2 * time.Hour), Reason: "test"}), "revoke token")
	got, _ := s.GetToken(ctx, []byte{1, 1, 2, 3})
	if !got.RevokedAt.Equal(at) {
		t.Fatalf("a jti revocation marks the stored token: %v", got.RevokedAt)
	}
	ok(t, s.AddRevocation(ctx, &store.Revocation{Kind: store.RevokeSubject, Value: "u1", At: at, ExpiresAt: at.Add(time.Minute)}), "short")
	list, err := s.ListRevocations(ctx, at.Add(30*time.Minute))
	ok(t, err, "list")
	if len(list) != 1 || list[0].Kind != store.RevokeTokenID || list[0].Reason != "test" || !list[0].At.Equal(at) {
		t.Fatalf("expired entries must not be listed: %+v", list)
	}
	if all, _ := s.ListRevocations(ctx, at); len(all) != 2 {
		t.Fatalf("both entries are live at %v: %+v", at, all)
	}
}

func testRevocationMarks(t *testing.T, s store.Store) {
	mk := func(id string, hash byte, mutate func(*store.Token)) {
		tk := token(id, hash, at.Add(24*time.Hour))
		tk.Kind = store.TokenRefresh
		mutate(tk)
		ok(t, s.CreateToken(ctx, tk), "create "+id)
	}
	mk("grant-a", 1, func(tk *store.Token) { tk.GrantID, tk.Subject, tk.ClientID = "ga", "ua", "ca" })
	mk("grant-b", 2, func(tk *store.Token) { tk.GrantID, tk.Subject, tk.ClientID = "gb", "ub", "cb" })
	mk("subject-old", 3, func(tk *store.Token) { tk.GrantID, tk.Subject, tk.ClientID = "g3", "us", "c3" })
	mk("subject-new", 4, func(tk *store.Token) {
		tk.GrantID, tk.Subject, tk.ClientID, tk.IssuedAt = "g4", "us", "c4", at.Add(time.Minute)
	})
	mk("client-old", 5, func(tk *store.Token) { tk.GrantID, tk.Subject, tk.ClientID = "g5", "u5", "cc" })
	rev := func(kind, value string) {
		ok(t, s.AddRevocation(ctx, &store.Revocation{Kind: kind, Value: value, At: at, ExpiresAt: at.Add(time.Hour)}), "revoke "+kind)
	}
	rev(store.RevokeGrant, "ga")
	rev(store.RevokeSubject, "us")
	rev(store.RevokeClient, "cc")
	for _, c := range []struct {
		id      string
		revoked bool
	}{{"grant-a", true}, {"grant-b", false}, {"subject-old", true}, {"subject-new", false}, {"client-old", true}} {
		got, err := s.GetTokenByID(ctx, c.id)
		ok(t, err, c.id)
		if got.RevokedAt.IsZero() == c.revoked {
			t.Errorf("%s: revoked_at = %v, want revoked %v (a revocation must outlive its own entry on stored refresh tokens)", c.id, got.RevokedAt, c.revoked)
		}
	}
}

func testRefreshRotation(t *testing.T, s store.Store) {
	first := token("r1", 1, at.Add(8*time.Hour))
	first.Kind = store.TokenRefresh
	ok(t, s.CreateToken(ctx, first), "create")
	next := func(i int) *store.Token {
		tk := token(fmt.Sprintf("r1-next-%d", i), byte(10+i), at.Add(8*time.Hour))
		tk.Kind = store.TokenRefresh
		return tk
	}
	// Concurrent rotations of one token: exactly one succeeds, the rest see a conflict.
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.RotateRefreshToken(ctx, first.Hash, next(i), at.Add(time.Minute), &store.AuditEvent{At: at, Type: "token.refreshed", Subject: "u1"})
		}()
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("concurrent rotation: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d rotations of one refresh token succeeded; exactly one must", wins)
	}
	got, err := s.GetToken(ctx, first.Hash)
	ok(t, err, "get used")
	if !got.UsedAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("used_at = %v", got.UsedAt)
	}
	stored := 0
	for i := range n {
		if _, err := s.GetTokenByID(ctx, fmt.Sprintf("r1-next-%d", i)); err == nil {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d successors stored; only the winner's may be", stored)
	}
	events, err := s.ListAudit(ctx, store.AuditFilter{Type: "token.refreshed"})
	ok(t, err, "audit")
	if len(events) != 1 {
		t.Fatalf("%d audit events for one successful rotation; the losers' events must roll back with them", len(events))
	}
	is(t, s.RotateRefreshToken(ctx, []byte("nope"), next(99), at, nil), store.ErrNotFound, "unknown")
	access := token("a1", 50, at.Add(time.Hour))
	ok(t, s.CreateToken(ctx, access), "access")
	is(t, s.RotateRefreshToken(ctx, access.Hash, next(98), at, nil), store.ErrNotFound, "an access token is not a refresh token")
	revoked := token("r2", 60, at.Add(time.Hour))
	revoked.Kind = store.TokenRefresh
	ok(t, s.CreateToken(ctx, revoked), "r2")
	ok(t, s.AddRevocation(ctx, &store.Revocation{Kind: store.RevokeTokenID, Value: "r2", At: at, ExpiresAt: at.Add(time.Hour)}), "revoke r2")
	is(t, s.RotateRefreshToken(ctx, revoked.Hash, next(97), at, nil), store.ErrConflict, "revoked")
}

func testAssertionIDs(t *testing.T, s store.Store) {
	exp := time.Now().Add(time.Hour)
	ok(t, s.UseAssertionID(ctx, "sa1", "jti-1", exp), "first use")
	is(t, s.UseAssertionID(ctx, "sa1", "jti-1", exp), store.ErrConflict, "replay")
	ok(t, s.UseAssertionID(ctx, "sa2", "jti-1", exp), "same jti from another issuer")
	ok(t, s.UseAssertionID(ctx, "sa1", "old", time.Now().Add(-time.Minute)), "already expired")
	n, err := s.Prune(ctx, time.Now())
	ok(t, err, "prune")
	if n < 1 {
		t.Fatalf("prune removed %d rows", n)
	}
	ok(t, s.UseAssertionID(ctx, "sa1", "old", time.Now().Add(time.Hour)), "pruned jti can be recorded again")
	is(t, s.UseAssertionID(ctx, "sa1", "jti-1", exp), store.ErrConflict, "unexpired entries survive pruning")
}

func testChanges(t *testing.T, s store.Store) {
	start, err := s.LastChangeSeq(ctx)
	ok(t, err, "last seq")
	steps := []struct {
		kind, key string
		do        func() error
	}{
		{store.ChangeClient, "c1", func() error { return s.CreateClient(ctx, newClient("c1")) }},
		{store.ChangeClient, "c1", func() error { c, _ := s.GetClient(ctx, "c1"); return s.UpdateClient(ctx, c) }},
		{store.ChangeRole, "client:c1", func() error { return s.GrantRole(ctx, store.KindClient, "c1", "admin") }},
		{store.ChangeServiceAccount, "sa1", func() error {
			return s.CreateServiceAccount(ctx, &store.ServiceAccount{ID: "sa1", Name: "bot", CreatedAt: at, UpdatedAt: at})
		}},
		{store.ChangePublicKey, "k1", func() error {
			return s.CreatePublicKey(ctx, &store.PublicKey{ID: "k1", OwnerKind: store.KindServiceAccount, OwnerID: "sa1", PublicKeyPEM: []byte("p"), CreatedAt: at})
		}},
		{store.ChangePublicKey, "k1", func() error { return s.RevokePublicKey(ctx, "k1", at) }},
		{store.ChangeUser, "u1", func() error {
			return s.CreateUser(ctx, &store.User{ID: "u1", Username: "u", CreatedAt: at, UpdatedAt: at})
		}},
		{store.ChangeSigningKey, "s1", func() error { return s.CreateSigningKey(ctx, signingKey("s1", "ES256", store.SigningActive, at)) }},
		{store.ChangeRevocation, "subject:u1", func() error {
			return s.AddRevocation(ctx, &store.Revocation{Kind: store.RevokeSubject, Value: "u1", At: at, ExpiresAt: at.Add(time.Hour)})
		}},
		{store.ChangeClient, "c1", func() error { return s.DeleteClient(ctx, "c1") }},
		{store.ChangeSetting, "k", func() error { return s.PutSetting(ctx, "k", "v") }},
		{store.ChangeExchangeRule, "r", func() error {
			return s.PutExchangeRule(ctx, &store.ExchangeRule{Name: "r", Body: []byte("{}"), UpdatedAt: at})
		}},
	}
	for i, st := range steps {
		before, _ := s.LastChangeSeq(ctx)
		ok(t, st.do(), fmt.Sprintf("step %d", i))
		changes, err := s.Changes(ctx, before, 100)
		ok(t, err, "changes")
		if len(changes) == 0 || changes[len(changes)-1].Kind != st.kind || changes[len(changes)-1].Key != st.key {
			t.Fatalf("step %d (%s %s): changes %+v", i, st.kind, st.key, changes)
		}
	}
	before, _ := s.LastChangeSeq(ctx)
	ok(t, s.CreateToken(ctx, token("t1", 1, at)), "token")
	ok(t, s.UseAssertionID(ctx, "x", "y", at.Add(time.Hour)), "jti")
	if after, _ := s.LastChangeSeq(ctx); after != before {
		t.Fatal("hot-path writes must not append changes")
	}
	all, _ := s.Changes(ctx, start, 1000)
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatal("changes must be in sequence order")
		}
	}
	limited, _ := s.Changes(ctx, start, 3)
	if len(limited) != 3 || limited[0].Seq != all[0].Seq {
		t.Fatalf("limit: %+v", limited)
	}
}

func testSettings(t *testing.T, s store.Store) {
	_, err := s.GetSetting(ctx, "x")
	is(t, err, store.ErrNotFound, "unset")
	ok(t, s.PutSetting(ctx, "x", "1"), "put")
	ok(t, s.PutSetting(ctx, "x", "2"), "overwrite")
	if v, _ := s.GetSetting(ctx, "x"); v != "2" {
		t.Fatalf("setting = %q", v)
	}
	// CreateSetting: the first writer wins, the value is kept.
	ok(t, s.CreateSetting(ctx, "first", "a"), "create")
	is(t, s.CreateSetting(ctx, "first", "b"), store.ErrConflict, "create again")
	if v, _ := s.GetSetting(ctx, "first"); v != "a" {
		t.Fatalf("the first value must stay: %q", v)
	}
}

func testPrune(t *testing.T, s store.Store) {
	now := time.Now()
	ok(t, s.CreateToken(ctx, token("old", 1, now.Add(-2*time.Hour))), "old token")
	ok(t, s.CreateToken(ctx, token("new", 2, now.Add(time.Hour))), "new token")
	ok(t, s.AddRevocation(ctx, &store.Revocation{Kind: store.RevokeTokenID, Value: "x", At: now, ExpiresAt: now.Add(-time.Second)}), "old revocation")
	_, err := s.Prune(ctx, now)
	ok(t, err, "prune")
	_, err = s.GetTokenByID(ctx, "old")
	is(t, err, store.ErrNotFound, "expired token pruned")
	_, err = s.GetTokenByID(ctx, "new")
	ok(t, err, "live token kept")
	if list, _ := s.ListRevocations(ctx, now.Add(-time.Hour)); len(list) != 0 {
		t.Fatalf("expired revocation kept: %+v", list)
	}
	ok(t, s.Ping(ctx), "ping")
}

func testConcurrentTokens(t *testing.T, s store.Store) {
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := token(fmt.Sprintf("c%03d", i), byte(i), at.Add(time.Hour))
			tk.Hash = []byte(fmt.Sprintf("hash-%03d", i))
			errs <- s.CreateToken(ctx, tk)
			if i%10 == 0 { // a conflict in a batch must not fail its neighbours
				errs <- ignoreConflict(s.CreateToken(ctx, tk))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		ok(t, err, "concurrent create")
	}
	for i := range n {
		if _, err := s.GetToken(ctx, []byte(fmt.Sprintf("hash-%03d", i))); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
}

// testGroupCommitIsolation: concurrent writes of every kind, a third of them bound to fail (a token
// or assertion ID that exists, a refresh token already used, a session ID taken), go through the
// group-commit writer together. Each caller gets its own answer; what succeeded is stored with its
// audit event, what failed left nothing, and the audit chain has no gap and no fork.
func testGroupCommitIsolation(t *testing.T, s store.Store) {
	used := token("used", 200, at.Add(time.Hour))
	used.Kind, used.UsedAt = store.TokenRefresh, at
	ok(t, s.CreateToken(ctx, used), "a used refresh token")
	ok(t, s.CreateToken(ctx, token("taken", 201, at.Add(time.Hour))), "a token")
	ok(t, s.UseAssertionID(ctx, "iss", "seen", at.Add(time.Hour)), "an assertion ID")
	ok(t, s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "s-taken", Kind: "delegation", CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		&store.AuditEvent{At: at, Type: "exchange.allowed", Subject: "s-taken"}), "a session")
	const n = 120
	type outcome struct {
		i   int
		err error
	}
	results := make(chan outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := i%3 == 0
			var err error
			switch i % 4 {
			case 0: // a token
				tk := token(fmt.Sprintf("g%03d", i), 0, at.Add(time.Hour))
				tk.Hash = []byte(fmt.Sprintf("g-hash-%03d", i))
				if fail {
					tk.Hash = []byte{201, 1, 2, 3} // the token "taken"
				}
				err = s.CreateToken(ctx, tk)
			case 1: // an assertion ID
				jti := fmt.Sprintf("jti-%03d", i)
				if fail {
					jti = "seen"
				}
				err = s.UseAssertionID(ctx, "iss", jti, at.Add(time.Hour))
			case 2: // a refresh rotation with its audit event
				hash := []byte{byte(i), 1, 2, 3}
				if !fail {
					r := token(fmt.Sprintf("r%03d", i), byte(i), at.Add(time.Hour))
					r.Kind = store.TokenRefresh
					if err := s.CreateToken(ctx, r); err != nil {
						results <- outcome{i, err}
						return
					}
				} else {
					hash = used.Hash
				}
				next := token(fmt.Sprintf("r%03d-next", i), 0, at.Add(time.Hour))
				next.Kind, next.Hash = store.TokenRefresh, []byte(fmt.Sprintf("next-%03d", i))
				err = s.RotateRefreshToken(ctx, hash, next, at, &store.AuditEvent{At: at, Type: "token.refreshed", Subject: fmt.Sprint(i)})
			case 3: // a session with its audit event
				id := fmt.Sprintf("s%03d", i)
				if fail {
					id = "s-taken"
				}
				err = s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: id, Kind: "delegation", CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
					&store.AuditEvent{At: at, Type: "exchange.allowed", Subject: fmt.Sprint(i)})
			}
			results <- outcome{i, err}
		}()
	}
	wg.Wait()
	close(results)
	audited := map[string]bool{}
	for r := range results {
		fail := r.i%3 == 0
		switch {
		case fail && !errors.Is(r.err, store.ErrConflict):
			t.Fatalf("write %d (kind %d) was bound to fail with ErrConflict: %v", r.i, r.i%4, r.err)
		case !fail && r.err != nil:
			t.Fatalf("write %d (kind %d) failed with its neighbours: %v", r.i, r.i%4, r.err)
		}
		if r.i%4 >= 2 {
			audited[fmt.Sprint(r.i)] = !fail
		}
	}
	events, err := listOwn(s)
	ok(t, err, "list audit")
	checkChain(t, events)
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Subject] = true
	}
	for subject, want := range audited {
		if seen[subject] != want {
			t.Fatalf("write %s: audit event stored = %v, want %v (stored with its write or not at all)", subject, seen[subject], want)
		}
	}
	for i := range n {
		fail := i%3 == 0
		var err error
		switch i % 4 {
		case 0:
			_, err = s.GetToken(ctx, []byte(fmt.Sprintf("g-hash-%03d", i)))
		case 2:
			_, err = s.GetToken(ctx, []byte(fmt.Sprintf("next-%03d", i)))
		case 3:
			_, err = s.GetExchangeSession(ctx, fmt.Sprintf("s%03d", i))
		default:
			continue
		}
		if (err == nil) == fail {
			t.Fatalf("write %d (kind %d): stored = %v, want %v", i, i%4, err == nil, !fail)
		}
	}
}

func ignoreConflict(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err == nil {
		return errors.New("a duplicate token was accepted")
	}
	return err
}

func testAudit(t *testing.T, s store.Store) {
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.AppendAudit(ctx, &store.AuditEvent{At: at.Add(time.Duration(i) * time.Second), Type: "token.issued",
				Actor: fmt.Sprintf("a%d", i%3), Subject: "u1", Client: "c", Details: []byte(`{"b":1,"a":"x"}`)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		ok(t, err, "append")
	}
	ok(t, s.AppendAudit(ctx, &store.AuditEvent{At: at, Type: "exchange.denied", Actor: "a0", Subject: "u2"}, &store.AuditEvent{At: at, Type: "x", Actor: "a1"}), "append two")
	all, err := listOwn(s)
	ok(t, err, "list")
	if len(all) != n+2 {
		t.Fatalf("%d events, want %d", len(all), n+2)
	}
	checkChain(t, all)
	if got, _ := s.ListAudit(ctx, store.AuditFilter{Actor: "a0", Type: "token.issued"}); len(got) != n/3 {
		t.Fatalf("actor+type filter: %d", len(got))
	}
	if got, _ := s.ListAudit(ctx, store.AuditFilter{Subject: "u2"}); len(got) != 1 || got[0].Type != "exchange.denied" || string(got[0].Details) != "{}" {
		t.Fatalf("subject filter: %+v", got)
	}
	if got, _ := s.ListAudit(ctx, store.AuditFilter{Since: at.Add(50 * time.Second), Limit: 5}); len(got) != 5 {
		t.Fatalf("since+limit: %d", len(got))
	}
	if got, _ := s.ListAudit(ctx, store.AuditFilter{AfterSeq: all[n-1].Seq}); len(got) != 2 {
		t.Fatalf("after seq: %d", len(got))
	}
}

func testExchange(t *testing.T, s store.Store) {
	ok(t, s.PutExchangeRule(ctx, &store.ExchangeRule{Name: "support", Body: []byte(`{"mode":"impersonation"}`), UpdatedAt: at}), "put")
	ok(t, s.PutExchangeRule(ctx, &store.ExchangeRule{Name: "support", Body: []byte(`{"mode":"delegation"}`), UpdatedAt: at}), "replace")
	rules, err := s.ListExchangeRules(ctx)
	ok(t, err, "list")
	if len(rules) != 1 || string(rules[0].Body) != `{"mode":"delegation"}` {
		t.Fatalf("rules: %+v", rules)
	}
	ok(t, s.DeleteExchangeRule(ctx, "support"), "delete")
	is(t, s.DeleteExchangeRule(ctx, "support"), store.ErrNotFound, "delete twice")

	x := &store.ExchangeSession{ID: "x1", Kind: "impersonation", Actor: "admin", Subject: "u1", Client: "spa", Rule: "support", Reason: "ticket 1", CreatedAt: at, ExpiresAt: at.Add(15 * time.Minute)}
	event := func() *store.AuditEvent { return &store.AuditEvent{At: at, Type: "exchange.allowed"} }
	ok(t, s.OpenExchangeSession(ctx, x, event()), "create session")
	is(t, s.OpenExchangeSession(ctx, x, event()), store.ErrConflict, "duplicate session")
	got, err := s.GetExchangeSession(ctx, "x1")
	ok(t, err, "get session")
	if got.Reason != "ticket 1" || !got.ExpiresAt.Equal(x.ExpiresAt) || !got.EndedAt.IsZero() {
		t.Fatalf("session: %+v", got)
	}
	ok(t, s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "x2", Kind: "delegation", Actor: "svc", Subject: "u1", CreatedAt: at, ExpiresAt: at.Add(time.Minute)}, event()), "second")
	if active, _ := s.ListExchangeSessions(ctx, at.Add(5*time.Minute)); len(active) != 1 || active[0].ID != "x1" {
		t.Fatalf("active sessions: %+v", active)
	}
	ok(t, s.EndExchangeSession(ctx, "x1", "operator", at.Add(time.Minute)), "end")
	is(t, s.EndExchangeSession(ctx, "x1", "operator", at.Add(time.Minute)), store.ErrNotFound, "end twice")
	if active, _ := s.ListExchangeSessions(ctx, at.Add(30*time.Second)); len(active) != 1 || active[0].ID != "x2" {
		t.Fatalf("after end: %+v", active)
	}
	if all, _ := s.ListExchangeSessions(ctx, time.Time{}); len(all) != 2 || all[0].EndedBy != "operator" {
		t.Fatalf("all sessions: %+v", all)
	}
	ev := &store.AuditEvent{At: at, Type: "exchange.allowed", Actor: "admin", Subject: "u1"}
	ok(t, s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "x3", Kind: "impersonation", Actor: "admin", Subject: "u1", CreatedAt: at, ExpiresAt: at.Add(time.Minute)}, ev), "open with audit")
	if _, err := s.GetExchangeSession(ctx, "x3"); err != nil || ev.Seq == 0 || len(ev.Hash) == 0 {
		t.Fatalf("session and event: %v %+v", err, ev)
	}
	if err := s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "x3", CreatedAt: at, ExpiresAt: at}, &store.AuditEvent{At: at, Type: "x"}); err == nil {
		t.Fatal("a duplicate session must fail")
	}
	// Ending every open session of an actor, a subject or a client is one statement; ended and
	// expired sessions, and other principals' sessions, are left alone.
	for i, x := range []store.ExchangeSession{
		{ID: "b1", Actor: "bob", Subject: "u7", Client: "spa"}, {ID: "b2", Actor: "bob", Subject: "u8", Client: "api"},
		{ID: "b3", Actor: "bob", Subject: "u7", Client: "spa", ExpiresAt: at.Add(time.Second)}, {ID: "c1", Actor: "carol", Subject: "u7", Client: "spa"},
	} {
		x.Kind, x.CreatedAt = "impersonation", at
		if x.ExpiresAt.IsZero() {
			x.ExpiresAt = at.Add(time.Hour)
		}
		ok(t, s.OpenExchangeSession(ctx, &x, &store.AuditEvent{At: at, Type: "exchange.allowed", Actor: fmt.Sprint(i)}), "open "+x.ID)
	}
	_, err = s.EndExchangeSessions(ctx, store.SessionSelector{Actor: "bob", Subject: "u7"}, "op", at)
	if err == nil {
		t.Fatal("a selector naming two things must be refused")
	}
	n, err := s.EndExchangeSessions(ctx, store.SessionSelector{Actor: "bob"}, "op", at.Add(time.Minute))
	ok(t, err, "end by actor")
	if n != 2 {
		t.Fatalf("sessions of bob ended: %d, want 2 (b3 had expired)", n)
	}
	if b3, _ := s.GetExchangeSession(ctx, "b3"); !b3.EndedAt.IsZero() {
		t.Fatal("an expired session was marked ended")
	}
	if c1, _ := s.GetExchangeSession(ctx, "c1"); !c1.EndedAt.IsZero() {
		t.Fatal("another actor's session was ended")
	}
	if b2, _ := s.GetExchangeSession(ctx, "b2"); b2.EndedBy != "op" || !b2.EndedAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("ended session: %+v", b2)
	}
	if n, _ := s.EndExchangeSessions(ctx, store.SessionSelector{Subject: "u7"}, "op", at.Add(2*time.Minute)); n != 1 {
		t.Fatalf("sessions about u7 still open: %d, want 1 (c1)", n)
	}
	if n, _ := s.EndExchangeSessions(ctx, store.SessionSelector{Client: "spa"}, "op", at.Add(2*time.Minute)); n != 0 {
		t.Fatalf("sessions of spa still open: %d, want 0", n)
	}
	ok(t, s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "k1", Kind: "impersonation", Actor: "a", Subject: "s", CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		&store.AuditEvent{At: at, Type: "exchange.allowed"}), "open k1")
	ok(t, s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "k2", Kind: "delegation", Actor: "a", Subject: "s", CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		&store.AuditEvent{At: at, Type: "exchange.allowed"}), "open k2")
	if n, _ := s.EndExchangeSessions(ctx, store.SessionSelector{Kind: "impersonation"}, "op", at.Add(3*time.Minute)); n != 1 {
		t.Fatalf("impersonation sessions ended by kind: %d, want 1 (k1; k2 is a delegation)", n)
	}
	// The failed item left no audit event behind, and the chain continues without a gap.
	ok(t, s.AppendAudit(ctx, &store.AuditEvent{At: at, Type: "after"}), "append after a failed item")
	events, _ := listOwn(s)
	for _, e := range events {
		if e.Type == "x" {
			t.Fatalf("the failed item's audit event was stored: %+v", events)
		}
	}
	checkChain(t, events)
}

// testAuditOddText: a refused request's subject goes into the audit log as the caller sent it; a NUL
// byte or invalid UTF-8 (which PostgreSQL's text refuses) is stored with U+FFFD in its place, and the
// event is chained over what was stored.
func testAuditOddText(t *testing.T, s store.Store) {
	e := &store.AuditEvent{At: at, Type: "exchange.denied", Actor: "a\x00b", Subject: "\xff\xfeeve", Client: "c"}
	ok(t, s.AppendAudit(ctx, e), "append an event with a NUL byte and invalid UTF-8")
	events, err := listOwn(s)
	ok(t, err, "list")
	if len(events) != 1 || events[0].Actor != "a\uFFFDb" || events[0].Subject != "\uFFFD\uFFFDeve" && events[0].Subject != "\uFFFDeve" {
		t.Fatalf("stored %+v", events)
	}
	checkChain(t, events)
}

// listOwn lists the audit events the store appended, leaving out the event with which PostgreSQL
// seals chain "" when its writers open chains of their own (SealLegacyChain).
func listOwn(s store.Store) ([]store.AuditEvent, error) {
	all, err := s.ListAudit(ctx, store.AuditFilter{})
	own := all[:0]
	for _, e := range all {
		if !(e.Chain == "" && e.Type == "audit.sealed") {
			own = append(own, e)
		}
	}
	return own, err
}

// checkChain checks events, all of one store, as one chain: positions 1, 2, 3, … in the order of
// their sequence numbers, the first linked to the chain's documented genesis (nothing for chain "",
// else HMAC-SHA-256(audit key, "signet audit chain v1" ⏎ name)), each next to the one before.
func checkChain(t *testing.T, events []store.AuditEvent) {
	t.Helper()
	if len(events) == 0 {
		t.Fatal("no audit events")
	}
	prev := genesis(events[0].Chain)
	for i, e := range events {
		if e.Chain != events[0].Chain || e.Position != int64(i+1) || (i > 0 && e.Seq <= events[i-1].Seq) {
			t.Fatalf("event %d: chain %q position %d seq %d; want one chain numbered 1, 2, 3, … in the order of seq: %+v", i+1, e.Chain, e.Position, e.Seq, events)
		}
		if string(e.PrevHash) != string(prev) || string(e.Hash) != string(store.ChainHash(AuditKey, prev, &e)) {
			t.Fatalf("event %d breaks the chain: %+v", i+1, e)
		}
		prev = e.Hash
	}
}

// genesis is what a chain's first event links to, computed from docs/audit.md with crypto/hmac.
func genesis(chain string) []byte {
	if chain == "" {
		return []byte{}
	}
	return hmacSHA256(AuditKey, []byte("signet audit chain v1\n"+chain))
}

// goldenEvents are fixed audit events as a caller hands them to AppendAudit, with the canonical
// bytes docs/audit.md says the chain covers, written out by hand: each field quoted and followed by
// a line feed (sequence number, time in RFC 3339 UTC cut to microseconds without trailing zeros,
// type, actor, subject, client), then the details exactly as stored ({} when empty).
func goldenEvents() (events []*store.AuditEvent, canonical [][]byte) {
	paris := time.FixedZone("CET", 3600)
	return []*store.AuditEvent{
			{At: time.Date(2026, 11, 24, 12, 30, 15, 123456000, time.UTC), Type: "exchange.allowed", Actor: "u-sam", Subject: "u-dana", Client: "spa",
				Details: []byte(`{"mode":"impersonation","reason":"ticket 42"}`)},
			{At: time.Date(2026, 11, 24, 12, 30, 16, 0, time.UTC), Type: "token.revoked", Actor: "cli:\"ops\"\n", Subject: "Zoë"},
			{At: time.Date(2026, 11, 24, 13, 30, 17, 500000999, paris), Type: "x", Details: []byte(`{ "a": 1 }`)},
		}, [][]byte{
			[]byte("\"1\"\n\"2026-11-24T12:30:15.123456Z\"\n\"exchange.allowed\"\n\"u-sam\"\n\"u-dana\"\n\"spa\"\n" + `{"mode":"impersonation","reason":"ticket 42"}`),
			[]byte("\"2\"\n\"2026-11-24T12:30:16Z\"\n\"token.revoked\"\n\"cli:\\\"ops\\\"\\n\"\n\"Zoë\"\n\"\"\n{}"),
			[]byte("\"3\"\n\"2026-11-24T12:30:17.5Z\"\n\"x\"\n\"\"\n\"\"\n\"\"\n" + `{ "a": 1 }`),
		}
}

// goldenKeyed and goldenUnkeyed are the golden events' hashes, computed outside Go from the bytes
// above: HMAC-SHA-256 under AuditKey, and the plain SHA-256 chain of versions before the keyed one.
var (
	goldenKeyed = []string{
		"872f25c9f809ff2150a3b32939bfc41b57f822938aaccc03eb30b06b18f0dee4",
		"8f8e6db9f7f447d20f6ca6ef85dfeee5e42c5a6b2fe07bd0df2227447faec00c",
		"5277afb65cb862d8ff6f61a84d5a6fad2e83e5554715d0947dc8d89d5d4cc018",
	}
	goldenUnkeyed = []string{
		"446942238166d69e5ce4560ee00857f83ce33bcf9a9143887190cf2b3cbc7e26",
		"5c94464cd08a747be9c09e03690698475708c2334350639398fa8d98f0103ae8",
		"501803c1545682a4bbf8426e7b042a0c9222f9e85524c67c8f559b8b9397bdd7",
	}
)

// The genesis of the chain named replica-a and the hash of the first golden event on it, computed
// outside Go (Python's hmac) from docs/audit.md.
const (
	goldenGenesisReplicaA = "23db4ee481dd7f36ffc5d994e5a415bb161fb07eba9ee134d7242dbb40318fbd"
	goldenReplicaAFirst   = "bc552af2da4f32dcaba4ced61037f76c50c3453461a47c0c72b9f281a797cf64"
)

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// testAuditGolden: the store chains events exactly as documented, HMAC-SHA-256(audit key,
// prev_hash || canonical(event)), recomputed here with crypto/hmac from the bytes written by hand
// and checked against vectors computed outside Go.
func testAuditGolden(t *testing.T, s store.Store) {
	events, canonical := goldenEvents()
	ok(t, s.AppendAudit(ctx, events...), "append")
	stored, err := listOwn(s)
	ok(t, err, "list")
	if len(stored) != len(events) {
		t.Fatalf("%d events stored, want %d", len(stored), len(events))
	}
	// A named chain (PostgreSQL: one per writer) starts from its genesis; the vector pins it for
	// the name "replica-a".
	if g := hex.EncodeToString(genesis("replica-a")); g != goldenGenesisReplicaA {
		t.Fatalf("the genesis of chain replica-a computed from the documented formula is %s, the vector says %s", g, goldenGenesisReplicaA)
	}
	if g := hex.EncodeToString(store.ChainGenesis(AuditKey, "replica-a")); g != goldenGenesisReplicaA {
		t.Fatalf("store.ChainGenesis(replica-a) = %s, the vector says %s", g, goldenGenesisReplicaA)
	}
	if h := hex.EncodeToString(hmacSHA256(AuditKey, genesis("replica-a"), canonical[0])); h != goldenReplicaAFirst {
		t.Fatalf("the first golden event on chain replica-a hashes to %s, the vector says %s", h, goldenReplicaAFirst)
	}
	prev := genesis(stored[0].Chain)
	for i, e := range stored {
		want := hmacSHA256(AuditKey, prev, canonical[i])
		if e.Chain == "" && hex.EncodeToString(want) != goldenKeyed[i] {
			t.Fatalf("event %d: crypto/hmac over the documented bytes gives %x, the vector says %s", i+1, want, goldenKeyed[i])
		}
		if e.Position != int64(i+1) || string(e.PrevHash) != string(prev) || string(e.Hash) != string(want) {
			t.Fatalf("event %d on chain %q: stored position %d prev %x hash %x, want position %d prev %x hash %x", i+1, e.Chain, e.Position, e.PrevHash, e.Hash, i+1, prev, want)
		}
		if string(events[i].Hash) != string(e.Hash) || events[i].Seq != e.Seq || events[i].Position != e.Position || events[i].Chain != e.Chain {
			t.Fatalf("event %d: AppendAudit reported seq %d position %d hash %x, the store holds seq %d position %d hash %x", i+1, events[i].Seq, events[i].Position, events[i].Hash, e.Seq, e.Position, e.Hash)
		}
		prev = e.Hash
	}
}

// testAuditKeyedFrom: a new database records that its chain is keyed from the first event, so no
// event of it is ever verified unkeyed.
func testAuditKeyedFrom(t *testing.T, s store.Store) {
	v, err := s.GetSetting(ctx, store.AuditKeyedFromSetting)
	ok(t, err, "keyed-from marker")
	if v != "1" {
		t.Fatalf("a new database's chain is keyed from %q, want 1", v)
	}
}

// RunUpgrade checks a database whose audit log an earlier version wrote, chained with plain SHA-256:
// old is that database, migrated to the schema before the keyed chain (placeholders $1, $2, … when
// dollar is set); open opens it with the current code and AuditKey. The old events stay as they
// were, the migration marks the chain keyed from the next event, and that event's HMAC covers the
// last unkeyed hash, so rewriting the old events still breaks the chain.
func RunUpgrade(t *testing.T, old *sql.DB, dollar bool, open func(t *testing.T) store.Store) {
	events, canonical := goldenEvents()
	q := `INSERT INTO audit_events (seq, at, type, actor, subject, client, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if dollar {
		q = `INSERT INTO audit_events (seq, at, type, actor, subject, client, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	}
	prev := []byte{}
	for i, e := range events {
		h := sha256.Sum256(append(append([]byte{}, prev...), canonical[i]...))
		if hex.EncodeToString(h[:]) != goldenUnkeyed[i] {
			t.Fatalf("unkeyed event %d: SHA-256 over the documented bytes gives %x, the vector says %s", i+1, h, goldenUnkeyed[i])
		}
		details := string(e.Details)
		if details == "" {
			details = "{}"
		}
		if _, err := old.ExecContext(ctx, q, i+1, e.At.Truncate(time.Microsecond).UnixMicro(), e.Type, e.Actor, e.Subject, e.Client, details, prev, h[:]); err != nil {
			t.Fatalf("writing the old chain: %v", err)
		}
		prev = h[:]
	}
	s := open(t)
	v, err := s.GetSetting(ctx, store.AuditKeyedFromSetting)
	ok(t, err, "keyed-from marker after the upgrade")
	if v != strconv.Itoa(len(events)+1) {
		t.Fatalf("the upgraded chain is keyed from %q, want %d", v, len(events)+1)
	}
	next := &store.AuditEvent{At: at, Type: "after.upgrade", Actor: "a"}
	ok(t, s.AppendAudit(ctx, next), "append after the upgrade")
	stored, err := s.ListAudit(ctx, store.AuditFilter{})
	ok(t, err, "list")
	for i := range events {
		if hex.EncodeToString(stored[i].Hash) != goldenUnkeyed[i] || stored[i].Chain != "" || stored[i].Position != int64(i+1) {
			t.Fatalf("the upgrade changed old event %d", i+1)
		}
	}
	// The first keyed event of chain "" seals the old ones: the store's next event on SQLite (one
	// chain), the seal PostgreSQL writes when its replicas move to chains of their own.
	legacy, err := s.ListAudit(ctx, store.AuditFilter{InChain: &store.ChainPosition{Chain: "", Position: int64(len(events))}})
	ok(t, err, "list chain \"\"")
	if len(legacy) != 1 {
		t.Fatalf("%d keyed events on chain \"\" after the upgrade, want the one that seals the old ones", len(legacy))
	}
	first := legacy[0]
	if first.Type != "after.upgrade" && first.Type != "audit.sealed" {
		t.Fatalf("chain \"\" continues with %q", first.Type)
	}
	wantCanonical := []byte(fmt.Sprintf("\"4\"\n\"%s\"\n\"%s\"\n\"%s\"\n\"\"\n\"\"\n%s", first.At.UTC().Format(time.RFC3339Nano), first.Type, first.Actor, first.Details))
	if first.Position != 4 || string(first.PrevHash) != string(prev) || string(first.Hash) != string(hmacSHA256(AuditKey, prev, wantCanonical)) {
		t.Fatalf("the first keyed event must be HMAC(audit key, last unkeyed hash || canonical): %+v", first)
	}
	if next.Chain != "" {
		checkChain(t, []store.AuditEvent{*next})
	}
}

// RunServiceAccountGrantsUpgrade checks that a service account stored before accounts had grant
// allow-lists comes out of the migration that introduced them (version grantsVersion) with
// client_credentials and the JWT bearer grant, what it was made for. p migrates old, a fresh
// database of the backend; boolFalse is the backend's literal for false; open opens old's database
// with the current code (migrating it the rest of the way).
func RunServiceAccountGrantsUpgrade(t *testing.T, old *sql.DB, p *goose.Provider, grantsVersion int64, boolFalse string, open func(t *testing.T) store.Store) {
	var before int64 // the newest migration below grantsVersion (other branches may fill the gaps)
	found := false
	for _, src := range p.ListSources() {
		if src.Version < grantsVersion {
			before = max(before, src.Version)
		}
		found = found || src.Version == grantsVersion
	}
	if !found || before == 0 {
		t.Fatalf("migration %d or its predecessor is missing: %v", grantsVersion, p.ListSources())
	}
	if _, err := p.UpTo(ctx, before); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `INSERT INTO service_accounts (id, name, description, disabled, created_at, updated_at)
		VALUES ('sa-old', 'old-bot', '', `+boolFalse+`, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	a, err := open(t).GetServiceAccount(ctx, "sa-old")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"}
	if !slices.Equal(a.GrantTypes, want) {
		t.Fatalf("after the upgrade the account may use %v; want %v", a.GrantTypes, want)
	}
}

// RunSignInUpgrade checks that users, clients and roles stored before interactive sign-in come out
// of the migration that introduced it (version signinVersion) asking for nothing new: no password
// change, no second factor, first party, no logout URIs. Arguments as for
// RunServiceAccountGrantsUpgrade.
func RunSignInUpgrade(t *testing.T, old *sql.DB, p *goose.Provider, signinVersion int64, boolFalse string, open func(t *testing.T) store.Store) {
	var before int64
	found := false
	for _, src := range p.ListSources() {
		if src.Version < signinVersion {
			before = max(before, src.Version)
		}
		found = found || src.Version == signinVersion
	}
	if !found || before == 0 {
		t.Fatalf("migration %d or its predecessor is missing: %v", signinVersion, p.ListSources())
	}
	if _, err := p.UpTo(ctx, before); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, username, locked, created_at, updated_at) VALUES ('u-old', 'old-user', ` + boolFalse + `, 1, 1)`,
		`INSERT INTO clients (id, name, type, auth_method, redirect_uris, grant_types, scopes, audiences, access_token_format, access_token_alg,
			access_token_ttl, refresh_token_ttl, disabled, created_at, updated_at)
			VALUES ('c-old', 'old-app', 'web', 'client_secret_basic', '["https://old/cb"]', '["authorization_code"]', '[]', '[]', 'jwt', 'ES256',
			600000, 3600000, ` + boolFalse + `, 1, 1)`,
		`INSERT INTO roles (name, description, permissions, built_in) VALUES ('old-role', '', '["x"]', ` + boolFalse + `)`,
	} {
		if _, err := old.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t)
	u, err := s.GetUser(ctx, "u-old")
	ok(t, err, "old user")
	if u.PasswordChangeRequired || u.MFARequired || u.Username != "old-user" {
		t.Fatalf("old user after the upgrade: %+v", u)
	}
	c, err := s.GetClient(ctx, "c-old")
	ok(t, err, "old client")
	if c.ThirdParty || c.PostLogoutRedirectURIs != nil || c.BackchannelLogoutURI != "" || c.RequireMFA || !slices.Equal(c.RedirectURIs, []string{"https://old/cb"}) {
		t.Fatalf("old client after the upgrade: %+v", c)
	}
	r, err := s.GetRole(ctx, "old-role")
	ok(t, err, "old role")
	if r.RequireMFA || !slices.Equal(r.Permissions, []string{"x"}) {
		t.Fatalf("old role after the upgrade: %+v", r)
	}
	roles, err := s.ListRoles(ctx)
	ok(t, err, "roles")
	for _, r := range roles {
		if r.RequireMFA {
			t.Fatalf("role %s requires a second factor after the upgrade", r.Name)
		}
	}
}
