package admin_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestAdminAPIRolesAndRuleNames: roles are created and deleted through the admin API with the
// CLI's refusals; a rule naming a role that does not exist is refused (400, the field and the
// name); every rule field round-trips through PUT and GET; a check answers as the token endpoint
// (a client lacking the token-exchange grant is refused with the endpoint's words).
func TestAdminAPIRolesAndRuleNames(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	api := env.CreateClient(store.Client{Name: "orders-api"})
	spa := env.CreateClient(store.Client{Name: "admin-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	agent := env.CreateClient(store.Client{Name: "agent-app", GrantTypes: []string{"client_credentials"}})
	env.CreateServiceAccount("bot")
	root := env.CreateUser("root", "admin")
	sam := env.CreateUser("sam", "support")
	env.CreateUser("olga")
	admin := call{env, env.AdminToken(store.KindUser, root.ID, spa.Client)}

	rule := exchange.Rule{
		Name: "every-field", Mode: exchange.ModeImpersonation,
		Actors:            exchange.Selector{Users: []string{"sam"}, Roles: []string{"support"}, ServiceAccounts: []string{"bot"}, Clients: []string{agent.ID}},
		Subjects:          exchange.Subjects{Users: []string{"dana"}, Roles: []string{"customer"}, ExcludeUsers: []string{"olga"}, ExcludeRoles: []string{"admin"}},
		Clients:           []string{spa.ID, agent.ID},
		ActorTokenClients: []string{agent.ID},
		Audiences:         []string{api.ID},
		Scopes:            []string{"read", "write"},
		MaxTTL:            exchange.Duration(10 * time.Minute),
		RequireReason:     true,
		AllowRefresh:      true,
		RefreshTTL:        exchange.Duration(2 * time.Hour),
		NotifySubject:     true,
		RequireActorMFA:   exchange.Duration(15 * time.Minute),
	}
	code, body := admin.do(t, "PUT", "/admin/v1/policies/every-field", rule)
	if desc, _ := body["error_description"].(string); code != 400 || body["error"] != "invalid_request" ||
		!strings.Contains(desc, `subjects.roles: no role "customer"`) || !strings.Contains(desc, `subjects.users: no user with ID or username "dana"`) {
		t.Fatalf("a rule naming a role and a user that do not exist: %d %v", code, body)
	}
	if code, body := admin.do(t, "POST", "/admin/v1/roles", map[string]any{"name": "customer", "description": "people who buy"}); code != 200 || body["name"] != "customer" {
		t.Fatalf("create role: %d %v", code, body)
	}
	if code, body := admin.do(t, "POST", "/admin/v1/roles", map[string]any{"name": "customer"}); code != 409 || !strings.Contains(body["error_description"].(string), "already exists") {
		t.Fatalf("create a role twice: %d %v", code, body)
	}
	if code, body := admin.do(t, "POST", "/admin/v1/roles", map[string]any{"name": "x", "permissions": []string{"signet:everything"}}); code != 400 || body["error"] != "invalid_request" {
		t.Fatalf("an unknown permission: %d %v", code, body)
	}
	env.CreateUser("dana", "customer")
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/every-field", rule); code != 200 {
		t.Fatalf("put: %d %v", code, body)
	}
	_, list := admin.do(t, "GET", "/admin/v1/policies", nil)
	b, _ := json.Marshal(list["rules"])
	var got []exchange.Rule
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if !reflect.DeepEqual(got[0], rule) {
		t.Fatalf("PUT → GET:\n got %+v\nwant %+v", got[0], rule)
	}
	raw := list["rules"].([]any)[0]
	for _, f := range exchange.RuleFields() {
		v := raw
		for _, part := range strings.Split(f, ".") {
			v = v.(map[string]any)[part]
		}
		if v == nil && f != "disabled" {
			t.Errorf("field %s did not survive the admin API: %v", f, raw)
		}
	}

	for _, tc := range []struct {
		role string
		code int
		want string
	}{
		{"customer", 409, "still granted to user dana"},
		{"support", 409, "built in"},
		{"nosuch", 400, `no role "nosuch"`},
	} {
		if code, body := admin.do(t, "DELETE", "/admin/v1/roles/"+tc.role, nil); code != tc.code || !strings.Contains(body["error_description"].(string), tc.want) {
			t.Errorf("delete %s: %d %v", tc.role, code, body)
		}
	}
	if err := env.Server.Store.RevokeRole(context.Background(), store.KindUser, mustUser(t, env, "dana").ID, "customer"); err != nil {
		t.Fatal(err)
	}
	if code, body := admin.do(t, "DELETE", "/admin/v1/roles/customer", nil); code != 409 || !strings.Contains(body["error_description"].(string), `named by exchange rule "every-field"`) {
		t.Fatalf("delete a role a rule names: %d %v", code, body)
	}
	admin.do(t, "DELETE", "/admin/v1/policies/every-field", nil)
	if code, body := admin.do(t, "DELETE", "/admin/v1/roles/customer", nil); code != 200 {
		t.Fatalf("delete: %d %v", code, body)
	}
	if _, roles := admin.do(t, "GET", "/admin/v1/roles", nil); strings.Contains(string(mustJSON(roles)), `"customer"`) {
		t.Fatalf("a deleted role is listed: %v", roles)
	}

	// agent-app lacks the token-exchange grant: the check says so as the token endpoint would.
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/agent", map[string]any{"mode": "impersonation", "actors": map[string]any{"roles": []string{"support"}},
		"subjects": map[string]any{"users": []string{"*"}}, "clients": []string{agent.ID}, "audiences": []string{api.ID}, "scopes": []string{"read"}}); code != 200 {
		t.Fatalf("put: %d %v", code, body)
	}
	_, check := admin.do(t, "POST", "/admin/v1/policies/check", map[string]any{"actor": sam.ID, "subject": mustUser(t, env, "olga").ID, "client": agent.ID, "scope": []string{"read"}})
	if check["allowed"] != false || check["error"] != "unauthorized_client" || !strings.Contains(check["description"].(string), "may not use grant_type urn:ietf:params:oauth:grant-type:token-exchange") {
		t.Fatalf("check of a client without the grant: %v", check)
	}
	if code, body := admin.do(t, "POST", "/admin/v1/policies/check", map[string]any{"actor": sam.ID, "subject": sam.ID, "client": "nope"}); code != 400 || !strings.Contains(body["error_description"].(string), "no client or service account") {
		t.Fatalf("check with an unknown client: %d %v", code, body)
	}
}

func mustUser(t *testing.T, env *testenv.Env, name string) *store.User {
	t.Helper()
	u, err := env.Server.Store.GetUserByUsername(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
