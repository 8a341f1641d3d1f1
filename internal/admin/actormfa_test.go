package admin_test

import (
	"context"
	"testing"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestPolicyCheckSaysTheActorNeedsASecondFactor: POST /admin/v1/policies/check cannot see an actor
// token, so under a rule with require_actor_mfa its ALLOW says the window the token endpoint will
// require; a rule without it says nothing of the kind.
func TestPolicyCheckSaysTheActorNeedsASecondFactor(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	env.Server.Store.PutRole(context.Background(), &store.Role{Name: "customer"})
	api := env.CreateClient(store.Client{Name: "orders-api"})
	spa := env.CreateClient(store.Client{Name: "admin-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	root := env.CreateUser("root", "admin")
	sam := env.CreateUser("sam", "support")
	dana := env.CreateUser("dana", "customer")
	admin := call{env, env.AdminToken(store.KindUser, root.ID, spa.Client)}
	rule := map[string]any{"mode": "impersonation", "actors": map[string]any{"roles": []string{"support"}}, "subjects": map[string]any{"roles": []string{"customer"}},
		"clients": []string{spa.ID}, "audiences": []string{api.ID}, "scopes": []string{"read"}, "require_actor_mfa": "10m"}
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/support-mfa", rule); code != 200 {
		t.Fatalf("put: %d %v", code, body)
	}
	ask := map[string]any{"actor": sam.ID, "subject": dana.ID, "client": spa.ID, "scope": []string{"read"}}
	if _, check := admin.do(t, "POST", "/admin/v1/policies/check", ask); check["allowed"] != true || check["require_actor_mfa"] != "10m0s" {
		t.Fatalf("check: %v", check)
	}
	rule["require_actor_mfa"] = ""
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/support-mfa", rule); code != 200 {
		t.Fatalf("put without it: %d %v", code, body)
	}
	if _, check := admin.do(t, "POST", "/admin/v1/policies/check", ask); check["allowed"] != true || check["require_actor_mfa"] != nil {
		t.Fatalf("check without it: %v", check)
	}
}
