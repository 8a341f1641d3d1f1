package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
	"github.com/signet-id/signet/internal/tokens"
)

// Each test here walks one attacker path from issue 9 ("Every guarantee holds against an
// adversary"); each failed on the code before it.

func mustExchange(t *testing.T, x *xenv, c testenv.Client, form map[string]string) map[string]any {
	t.Helper()
	code, body := x.exchangeAs(c, form)
	if code != 200 {
		t.Fatalf("exchange refused: %d %v", code, body)
	}
	return body
}

func wantError(t *testing.T, code int, body map[string]any, status int, errCode, fragment string) {
	t.Helper()
	desc, _ := body["error_description"].(string)
	if code != status || body["error"] != errCode || !strings.Contains(desc, fragment) {
		t.Fatalf("want %d %s containing %q, got %d %v", status, errCode, fragment, code, body)
	}
}

// active asks a gateway that may introspect every token, so audience never hides a token's state.
func (x *xenv) active(t *testing.T, raw string) bool {
	t.Helper()
	_, body := x.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, x.gateway.ID, x.gateway.Secret)
	return body["active"] == true
}

// Break 1: a client down-scopes a user's read token into an ID token, then uses that ID token as
// the subject of a delegation asking read write. The ID token carries its origin's scope.
func TestAdversaryIDTokenNeverWidensScope(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "wide-delegation", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{x.agentApp.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read", "write"}}); err != nil {
		t.Fatal(err)
	}
	danaRead := x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read")
	idTok := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": danaRead, "subject_token_type": typeAT, "requested_token_type": typeID})["access_token"].(string)
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeID,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID, "scope": "read write"})
	wantError(t, code, body, 400, "invalid_scope", `"write"`)
	body = mustExchange(t, x, x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeID,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	if body["scope"] != "read" {
		t.Fatalf("asking for nothing gets the ID token's origin scope, no more: %v", body)
	}
}

// Break 2: staff member B sends staff member A's impersonation token as subject_token with B's
// own token as actor. Refused; B impersonates by user ID in a session of B's own, which every
// operator tool then sees, ends and audits as B's.
func TestAdversaryOneActorOneSession(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	bea := x.CreateUser("bea", "support")
	beaToken := x.Token(store.KindUser, bea.ID, x.spa.Client, "read", "write")
	samImp := mustExchange(t, x, x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "t1"})["access_token"].(string)
	code, body := x.exchangeAs(x.spa, map[string]string{"subject_token": samImp, "subject_token_type": typeAT,
		"actor_token": beaToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "t2"})
	wantError(t, code, body, 400, "invalid_request", "impersonation starts from the user")

	beaImp := mustExchange(t, x, x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": beaToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "t3"})["access_token"].(string)
	info := x.introspect(t, beaImp)
	if act, _ := info["act"].(map[string]any); act["sub"] != bea.ID {
		t.Fatalf("bea's token names bea: %v", info)
	}
	active, _ := x.Server.Sessions.Active(ctx)
	var beas []string
	for _, s := range active {
		if s.Actor == bea.ID {
			beas = append(beas, s.ID)
		}
	}
	if len(beas) != 1 || beas[0] != info["signet_exchange"].(map[string]any)["session"] {
		t.Fatalf("impersonation list must show bea's session: %+v", active)
	}
	if n, err := x.Server.Sessions.EndActor(ctx, bea.ID, "op", "test"); err != nil || n != 1 {
		t.Fatalf("ending bea's sessions: %d %v", n, err)
	}
	if x.active(t, beaImp) {
		t.Fatal("bea's impersonation token survived the end of bea's sessions")
	}
	if !x.active(t, samImp) {
		t.Fatal("ending bea's sessions ended sam's")
	}
	var named bool
	for _, e := range x.audits(t, audit.TypeExchangeAllowed) {
		named = named || (e.Actor == bea.ID && strings.Contains(string(e.Details), beas[0]))
	}
	if !named {
		t.Fatal("the audit row of bea's exchange must name bea and bea's session")
	}
}

// Break 2, delegation: a second service delegating from the first one's token opens its own
// session (a child); ending the parent reaches the child through lineage, ending the child's actor
// leaves the parent alone.
func TestAdversaryDelegationChainsOpenChildSessions(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	agent2Token := x.Token(store.KindServiceAccount, x.agent2.ID, x.agentApp.Client, "read")
	danaApp := x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read")
	first := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": danaApp, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})["access_token"].(string)
	second := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": first, "subject_token_type": typeAT,
		"actor_token": agent2Token, "actor_token_type": typeAT, "audience": x.api.ID})["access_token"].(string)
	i1, i2 := x.introspect(t, first), x.introspect(t, second)
	s1, s2 := i1["signet_exchange"].(map[string]any)["session"], i2["signet_exchange"].(map[string]any)["session"]
	act := i2["act"].(map[string]any)
	if s1 == s2 || act["sub"] != x.agent2.ID || act["act"].(map[string]any)["sub"] != x.agent.ID {
		t.Fatalf("the second actor needs a session of its own and the whole chain in act: %v", i2)
	}
	if x.Server.Sessions.End(ctx, s1.(string), "op", "test") != nil || x.active(t, second) {
		t.Fatal("ending the parent session must end the child")
	}
}

// Break 3: a rule narrowed after the session opened narrows the next refresh at once.
func TestAdversaryRefreshReappliesTheNarrowedRule(t *testing.T) {
	x := newREnv(t)
	ctx := context.Background()
	other := x.CreateClient(store.Client{Name: "billing-api"})
	r, _ := x.Server.Policy.Rule(ctx, "agents-act-offline")
	wide := *r
	wide.Audiences = []string{x.api.ID, other.ID}
	if err := x.Server.Policy.Put(ctx, wide); err != nil {
		t.Fatal(err)
	}
	code, body := x.exchangeAs(x.offline, map[string]string{"subject_token": x.danaToken, "subject_token_type": typeAT,
		"actor_token": x.offlineAgentToken, "actor_token_type": typeAT, "audience": x.api.ID, "resource": other.ID, "requested_token_type": typeRT})
	if code != 200 || body["scope"] != "read write" {
		t.Fatalf("%d %v", code, body)
	}
	narrow := wide
	narrow.Audiences, narrow.Scopes = []string{other.ID}, []string{}
	if err := x.Server.Policy.Put(ctx, narrow); err != nil {
		t.Fatal(err)
	}
	tok, re := x.refresh(t, x.offline, body["refresh_token"].(string))
	if re != nil {
		t.Fatal(re)
	}
	_, info := x.PostForm("/oauth/v2/introspect", map[string]string{"token": tok.AccessToken}, other.ID, other.Secret)
	if aud, _ := info["aud"].([]any); info["active"] != true || info["scope"] != nil || len(aud) != 1 || aud[0] != other.ID {
		t.Fatalf("the refresh must carry the narrowed scope (none) and audience (billing only): %v", info)
	}
	narrow.Audiences = []string{x.web.ID}
	if err := x.Server.Policy.Put(ctx, narrow); err != nil {
		t.Fatal(err)
	}
	_, re = x.refresh(t, x.offline, tok.RefreshToken)
	wantRefused(t, re, "invalid_grant", "no longer allows any audience")
}

// Break 4: the admin API refuses an administrator's token issued for another API (or down-scoped
// to one), and introspect:any no longer needs the admin role.
func TestAdversaryAdminAPIHasItsOwnAudience(t *testing.T) {
	x := newXEnv(t)
	admin := x.CreateClient(store.Client{Name: "ops-cli", Roles: []string{"admin"}, Audiences: []string{x.api.ID}, GrantTypes: []string{"client_credentials", grantTE}})
	root := x.CreateUser("root", "admin")
	get := func(token string) (int, map[string]any) { return x.Bearer("GET", "/admin/v1/policies", token, nil) }
	apiToken := x.Token(store.KindUser, root.ID, admin.Client)
	code, body := get(apiToken)
	wantError(t, code, body, 401, "invalid_token", "not issued for the admin API")
	code, body = x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials", "resource": oauth.AdminAudience(x.URL)}, x.api.ID, x.api.Secret)
	wantError(t, code, body, 400, "invalid_target", "only a user, service account or client holding the signet:admin permission")
	code, body = x.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials", "audience": oauth.AdminAudience(x.URL)}, admin.ID, admin.Secret)
	if code != 200 {
		t.Fatalf("an admin client asks for the admin audience explicitly: %d %v", code, body)
	}
	if code, _ := get(body["access_token"].(string)); code != 200 {
		t.Fatalf("a token for the admin audience works: %d", code)
	}
	// Down-scoped — to another audience, or even keeping the admin API's — it no longer administers.
	for _, aud := range []string{admin.ID, oauth.AdminAudience(x.URL)} {
		narrowed := mustExchange(t, x, admin, map[string]string{"subject_token": body["access_token"].(string), "subject_token_type": typeAT, "audience": aud})
		if code, body := get(narrowed["access_token"].(string)); code != 403 || !strings.Contains(body["error_description"].(string), "token exchange") {
			t.Fatalf("a token down-scoped to %s must not reach the admin API: %d %v", aud, code, body)
		}
	}
	// A gateway with introspect-any sees every token active but cannot administer.
	gw := x.gateway
	_, info := x.PostForm("/oauth/v2/introspect", map[string]string{"token": x.danaToken}, gw.ID, gw.Secret)
	if info["active"] != true {
		t.Fatalf("introspect-any sees every token: %v", info)
	}
	if code, _ := get(x.Token(store.KindClient, gw.ID, gw.Client)); code != 401 {
		t.Fatal("introspect-any must not administer")
	}
}

// Break 5: client OTH presents client ADM's own token as actor_token.
func TestAdversaryActorTokenIsBoundToTheRequester(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	oth := x.CreateClient(store.Client{Name: "oth", GrantTypes: []string{grantTE}})
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "oth-delegates", Mode: exchange.ModeDelegation, Actors: exchange.Selector{Clients: []string{x.agentApp.ID, oth.ID}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{oth.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	admOwn := x.Token(store.KindClient, x.agentApp.ID, x.agentApp.Client, "read")
	danaOth := x.Token(store.KindUser, x.dana.ID, oth.Client, "read")
	code, body := x.exchangeAs(oth, map[string]string{"subject_token": danaOth, "subject_token_type": typeAT,
		"actor_token": admOwn, "actor_token_type": typeAT, "audience": x.api.ID})
	wantError(t, code, body, 400, "unauthorized_client", "actor_token_clients")
	denied := x.audits(t, audit.TypeExchangeDenied)
	if len(denied) == 0 || !strings.Contains(string(denied[len(denied)-1].Details), "actor_token_clients") {
		t.Fatal("the refusal is audited with its reason")
	}
}

// Break 6: a locked user's token is inactive everywhere and cannot be down-scoped; unlocking does not
// bring it back; a disabled client's tokens are inactive and cannot act.
func TestAdversaryLockedAndDisabledPrincipals(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	u := x.CreateUser("mia", "customer")
	tok := x.Token(store.KindUser, u.ID, x.web.Client, "read")
	child := mustExchange(t, x, x.web, map[string]string{"subject_token": tok, "subject_token_type": typeAT, "scope": "read"})["access_token"].(string)
	u.Locked = true
	if err := x.Server.Store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := x.Server.Sessions.RetirePrincipal(ctx, store.KindUser, u.ID, "op", "locked", time.Hour); err != nil {
		t.Fatal(err)
	}
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeUser, Key: u.ID})
	for name, raw := range map[string]string{"token": tok, "down-scoped child": child} {
		if x.active(t, raw) {
			t.Errorf("%s of a locked user is active", name)
		}
	}
	if code, _ := x.Bearer("GET", "/oidc/v1/userinfo", tok, nil); code != 401 {
		t.Fatalf("userinfo with a locked user's token: %d", code)
	}
	for _, typ := range []string{typeAT, typeID} {
		code, body := x.exchangeAs(x.web, map[string]string{"subject_token": tok, "subject_token_type": typeAT, "requested_token_type": typ})
		wantError(t, code, body, 400, "invalid_grant", "subject_token")
	}
	u.Locked = false
	x.Server.Store.UpdateUser(ctx, u)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeUser, Key: u.ID})
	if x.active(t, tok) || x.active(t, child) {
		t.Fatal("unlocking resurrected tokens issued before the lock")
	}
	// iat has second precision, so a token minted in the very second of the lock counts as before it.
	x.Server.OAuth.Now = func() time.Time { return time.Now().Add(time.Second) }
	fresh := x.Token(store.KindUser, u.ID, x.web.Client, "read")
	x.Server.OAuth.Now = time.Now
	if !x.active(t, fresh) {
		t.Fatal("an unlocked user gets working tokens again")
	}

	// A disabled client: its tokens are inactive, and its token cannot open a delegation as actor.
	c := x.CreateClient(store.Client{Name: "flaky"})
	own := x.Token(store.KindClient, c.ID, c.Client)
	userAtC := x.Token(store.KindUser, x.dana.ID, c.Client, "read")
	disabled := *c.Client
	disabled.Disabled = true
	x.Server.Store.UpdateClient(ctx, &disabled)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeClient, Key: c.ID})
	if x.active(t, own) || x.active(t, userAtC) {
		t.Fatal("a disabled client's tokens are active")
	}
	x.Server.Store.DeleteClient(ctx, c.ID)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeClient, Key: c.ID})
	if x.active(t, own) {
		t.Fatal("a deleted client's token is active")
	}
	// A disabled service account's token cannot act.
	sa := *x.agent
	sa.Disabled = true
	x.Server.Store.UpdateServiceAccount(ctx, &sa)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeServiceAccount, Key: sa.ID})
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read"), "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	wantError(t, code, body, 400, "invalid_grant", "actor_token is not an active access token")
}

// Break 7: revoking a parent reaches its down-scoped child, a delegation made from it, and an ID
// token minted from it.
func TestAdversaryRevocationFollowsLineage(t *testing.T) {
	x := newXEnv(t)
	parent := x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read")
	child := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": parent, "subject_token_type": typeAT, "scope": "read"})["access_token"].(string)
	idTok := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": child, "subject_token_type": typeAT, "requested_token_type": typeID})["access_token"].(string)
	grandchild := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": child, "subject_token_type": typeAT,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})["access_token"].(string)
	if code, _ := x.PostForm("/oauth/v2/revoke", map[string]string{"token": parent}, x.agentApp.ID, x.agentApp.Secret); code != 200 {
		t.Fatal("revoke")
	}
	for name, raw := range map[string]string{"child": child, "grandchild": grandchild} {
		if x.active(t, raw) {
			t.Errorf("the %s of a revoked token is active", name)
		}
	}
	code, body := x.exchangeAs(x.agentApp, map[string]string{"subject_token": idTok, "subject_token_type": typeID,
		"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID})
	wantError(t, code, body, 400, "invalid_grant", "subject_token was revoked")
	// Revoking the actor's token ends what it acted in too.
	agentTok := x.Token(store.KindServiceAccount, x.agent.ID, x.agentApp.Client, "read")
	fresh := mustExchange(t, x, x.agentApp, map[string]string{"subject_token": x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read"), "subject_token_type": typeAT,
		"actor_token": agentTok, "actor_token_type": typeAT, "audience": x.api.ID})["access_token"].(string)
	x.PostForm("/oauth/v2/revoke", map[string]string{"token": agentTok}, x.agentApp.ID, x.agentApp.Secret)
	if x.active(t, fresh) {
		t.Fatal("a delegation survived the revocation of its actor's token")
	}
}

// Break 8: refusals tell an attacker nothing.
func TestAdversaryRefusalsDiscloseNothing(t *testing.T) {
	x := newXEnv(t)
	imp := func(subject string) (int, map[string]any) {
		return x.exchangeAs(x.spa, map[string]string{"subject_token": subject, "subject_token_type": typeUser,
			"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "probe"})
	}
	// olga holds admin (sam lacks it); kai is locked and no rule lets sam reach kai; u-000000000000
	// names nobody. Each is sent under the same ID-shaped probe: only the ID in the text may differ.
	kai := x.CreateUser("kai", "support")
	kai.Locked = true
	x.Server.Store.UpdateUser(context.Background(), kai)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeUser, Key: kai.ID})
	norm := func(body map[string]any, id string) string {
		return strings.ReplaceAll(body["error"].(string)+" "+body["error_description"].(string), id, "<id>")
	}
	codeU, unknown := imp("u-000000000000")
	for _, u := range []*store.User{x.olga, kai} {
		code, body := imp(u.ID)
		if code != codeU || norm(body, u.ID) != norm(unknown, "u-000000000000") {
			t.Errorf("user %s is told apart from an unknown ID:\n%v\n%v", u.Username, body, unknown)
		}
	}
	// Unauthenticated Bearer at introspection: one description whatever the token.
	revoked := x.Token(store.KindServiceAccount, x.agent.ID, x.agentApp.Client)
	x.PostForm("/oauth/v2/revoke", map[string]string{"token": revoked}, x.agentApp.ID, x.agentApp.Secret)
	var first string
	for name, raw := range map[string]string{"a user's active token": x.danaToken, "revoked": revoked, "garbage": "abc.def.ghi", "opaque unknown": "sgn_at_" + strings.Repeat("A", 43)} {
		resp := x.Do("/oauth/v2/introspect", map[string]string{"token": x.danaToken}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+raw) })
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		got := body["error_description"].(string)
		if first == "" {
			first = got
		}
		if resp.StatusCode != 401 || got != first {
			t.Errorf("%s: %d %q differs from %q", name, resp.StatusCode, got, first)
		}
	}
	// Once a rule lets sam reach a user, being told the user is locked is sam's due.
	code, body := imp(x.locked.ID)
	wantError(t, code, body, 400, "invalid_grant", "is locked")
	if !x.active(t, x.danaToken) {
		t.Fatal("dana's token was already inactive")
	}
	// Revocation by another client: 200 for an active token as for garbage, and nothing revoked.
	for _, raw := range []string{x.danaToken, "garbage"} {
		if code, body := x.PostForm("/oauth/v2/revoke", map[string]string{"token": raw}, x.api.ID, x.api.Secret); code != 200 {
			t.Fatalf("revocation of a token the caller cannot revoke: %d %v", code, body)
		}
	}
	if !x.active(t, x.danaToken) {
		t.Fatal("another client revoked dana's token")
	}
}

// Break 9: no leeway on the issuer's own exp.
func TestAdversaryNoLeewayOnOwnExpiry(t *testing.T) {
	x := newXEnv(t)
	now := time.Now().Truncate(time.Second)
	for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
		a := &tokens.Access{Subject: x.dana.ID, SubjectKind: store.KindUser, ClientID: x.api.ID, Audience: []string{x.api.ID},
			IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(-time.Second)}
		raw, err := x.Server.Tokens.Issue(context.Background(), a, format, "ES256")
		if err != nil {
			t.Fatal(err)
		}
		if x.active(t, raw) {
			t.Errorf("a %s token one second past exp is active (leeway %s)", format, x.Config.Leeway)
		}
	}
}

// Break 10: ending every session of an actor is one revocation and one update, however many.
func TestAdversaryEndingManySessionsIsOneRevocation(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	before, _ := x.Server.Store.ListRevocations(ctx, time.Now())
	var toks []string
	for range 20 {
		toks = append(toks, mustExchange(t, x, x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
			"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "bulk"})["access_token"].(string))
	}
	n, err := x.Server.Sessions.EndActor(ctx, x.sam.ID, "op", "bulk end")
	if err != nil || n != 20 {
		t.Fatalf("ended %d: %v", n, err)
	}
	after, _ := x.Server.Store.ListRevocations(ctx, time.Now())
	if len(after)-len(before) != 1 {
		t.Fatalf("ending 20 sessions added %d revocations, want 1", len(after)-len(before))
	}
	for _, raw := range toks {
		if x.active(t, raw) {
			t.Fatal("a token of an ended session is active")
		}
	}
	// Sessions opened after the cut-off are not affected.
	later := mustExchange(t, x, x.spa, map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser,
		"actor_token": x.samToken, "actor_token_type": typeAT, "audience": x.api.ID, "reason": "later"})["access_token"].(string)
	if !x.active(t, later) {
		t.Fatal("a session opened after the end is active")
	}
}

// A service account that authenticates at the token endpoint itself (its secret) and is allowed
// token exchange gets tokens that work: their client is the account, in good standing.
func TestAdversaryTokensIssuedToAServiceAccountLive(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	bot := x.CreateServiceAccountWithGrants("bot", []string{grantTE})
	secret := giveSecret(t, x.Env, bot)
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "bot-delegates", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"bot"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{bot.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	// Tokens issued to the account itself (client_id = the account's ID).
	resp, a, err := x.Server.OAuth.IssueAccessToken(ctx, oauth.Issue{SubjectKind: store.KindServiceAccount, Subject: bot.ID, ClientID: bot.ID, Scope: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	if !x.active(t, resp.AccessToken) {
		t.Fatalf("a service account's own token (client %s) is dead on arrival", a.ClientID)
	}
	// A delegation it requests itself: sub dana, client_id the account.
	code, body := x.PostForm("/oauth/v2/token", map[string]string{"grant_type": grantTE, "subject_token": x.Token(store.KindUser, x.dana.ID, x.agentApp.Client, "read"),
		"subject_token_type": typeAT, "actor_token": resp.AccessToken, "actor_token_type": typeAT, "audience": x.api.ID}, bot.ID, secret)
	if code != 200 || !x.active(t, body["access_token"].(string)) {
		t.Fatalf("a delegation requested by the account itself is dead on arrival: %d %v", code, body)
	}
	sa := *bot
	sa.Disabled = true
	x.Server.Store.UpdateServiceAccount(ctx, &sa)
	x.Server.Dir.Invalidate(store.Change{Kind: store.ChangeServiceAccount, Key: sa.ID})
	if x.active(t, body["access_token"].(string)) {
		t.Fatal("a token issued to a disabled service account (as client) is active")
	}
}
