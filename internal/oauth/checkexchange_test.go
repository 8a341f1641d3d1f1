package oauth_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestCheckExchangeAnswersAsTheEndpoint: the dry run (`signet policy check`, the admin API's check)
// and the real exchange give the same answer, refusal code and description included, for every
// step after client authentication: the caller's standing and grants, the kill switch, the rules
// and the requested token type.
func TestCheckExchangeAnswersAsTheEndpoint(t *testing.T) {
	x := newXEnv(t)
	ctx := context.Background()
	noGrant := x.CreateClient(store.Client{Name: "no-exchange-grant", GrantTypes: []string{"client_credentials"}})
	disabled := x.CreateClient(store.Client{Name: "disabled-backend", GrantTypes: []string{grantTE}})
	if err := x.Server.Policy.Put(ctx, exchange.Rule{Name: "backends-impersonate", Mode: exchange.ModeImpersonation,
		Actors: exchange.Selector{Roles: []string{"support"}}, Subjects: exchange.Subjects{Roles: []string{"customer"}},
		Clients: []string{noGrant.ID, disabled.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	disabled.Disabled = true
	if err := x.Server.Store.UpdateClient(ctx, disabled.Client); err != nil {
		t.Fatal(err)
	}
	sam, err := exchange.PartyByKind(ctx, x.Server.Dir, store.KindUser, x.sam.ID)
	if err != nil {
		t.Fatal(err)
	}
	dana, err := exchange.PartyByKind(ctx, x.Server.Dir, store.KindUser, x.dana.ID)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		client    testenv.Client
		reason    string
		requested string
		killed    bool
		allowed   bool
		code      string
	}{
		{name: "allowed", client: x.spa, reason: "ticket 1", allowed: true},
		{name: "no token-exchange grant", client: noGrant, reason: "ticket 1", code: "unauthorized_client"},
		{name: "disabled client", client: disabled, reason: "ticket 1", code: "invalid_client"},
		{name: "reason required", client: x.spa, code: "invalid_request"},
		{name: "refresh token not allowed", client: x.spa, reason: "ticket 1", requested: "urn:ietf:params:oauth:token-type:refresh_token", code: "invalid_request"},
		{name: "kill switch", client: x.spa, reason: "ticket 1", killed: true, code: "access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.killed {
				if err := x.Server.Sessions.Disable(ctx, "test", "drill"); err != nil {
					t.Fatal(err)
				}
				defer x.Server.Sessions.Enable(ctx, "test", "drill over")
			}
			form := map[string]string{"subject_token": x.dana.ID, "subject_token_type": typeUser, "actor_token": x.Token(store.KindUser, x.sam.ID, tc.client.Client, "read"),
				"actor_token_type": typeAT, "audience": x.api.ID, "scope": "read", "reason": tc.reason}
			if tc.requested != "" {
				form["requested_token_type"] = tc.requested
			}
			status, body := x.exchangeAs(tc.client, form)
			_, d, err := x.Server.OAuth.CheckExchange(ctx, tc.client.ID, exchange.Check{Actor: sam, Subject: dana, Audiences: []string{x.api.ID},
				Scope: []string{"read"}, Reason: tc.reason, SubjectByUserID: true}, tc.requested)
			if tc.allowed {
				if status != 200 || err != nil || d.Rule != "support-impersonates-customers" {
					t.Fatalf("endpoint %d %v; check %+v %v", status, body, d, err)
				}
				return
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) {
				t.Fatalf("the check allowed or failed otherwise: %+v %v (endpoint: %d %v)", d, err, status, body)
			}
			if body["error"] != tc.code || oe.Code != tc.code || body["error_description"] != oe.Description || status != oe.Status {
				t.Fatalf("endpoint %d %v\ncheck    %d %s: %s", status, body, oe.Status, oe.Code, oe.Description)
			}
		})
	}
	if _, _, err := x.Server.OAuth.CheckExchange(ctx, "no-such-client", exchange.Check{Actor: sam, Subject: dana}, ""); !errors.Is(err, oauth.ErrUnknownCaller) {
		t.Fatalf("a check for a client that does not exist: %v", err)
	}
}

// TestExchangeTokensNameTheirSessionAsDocumented: an exchanged token names its exchange session in
// signet_exchange.session (introspection and the JWT alike) and has no sid, as
// docs/introspection.md says.
func TestExchangeTokensNameTheirSessionAsDocumented(t *testing.T) {
	x := newXEnv(t)
	code, body := x.impersonate("ticket 9")
	if code != 200 {
		t.Fatalf("impersonation: %d %v", code, body)
	}
	raw := body["access_token"].(string)
	info := x.introspect(t, raw)
	ex, _ := info["signet_exchange"].(map[string]any)
	session, _ := ex["session"].(string)
	if info["active"] != true || !strings.HasPrefix(session, "xs-") || ex["kind"] != "impersonation" {
		t.Fatalf("introspection: %v", info)
	}
	if _, has := info["sid"]; has {
		t.Fatalf("an exchange token has sid: %v", info)
	}
	sessions, err := x.Server.Store.ListExchangeSessions(context.Background(), time.Time{})
	if err != nil || len(sessions) != 1 || sessions[0].ID != session {
		t.Fatalf("signet_exchange.session is not the session `impersonation end` takes: %v %v", sessions, err)
	}
	doc, err := os.ReadFile("../../docs/introspection.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "is `signet_exchange.session`") || !strings.Contains(string(doc), "Exchange tokens have no `sid` claim") {
		t.Fatal("docs/introspection.md no longer says where an exchange token names its session")
	}
}
