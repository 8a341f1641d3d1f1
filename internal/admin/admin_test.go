package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

type call struct {
	env   *testenv.Env
	token string
}

func (c call) do(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return c.env.Bearer(method, path, c.token, body)
}

// TestAdminAPIManagesPoliciesSessionsAndAudit drives the admin API as an operator's tooling would.
func TestAdminAPIManagesPoliciesSessionsAndAudit(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	env.Server.Store.PutRole(ctx, &store.Role{Name: "customer"})
	api := env.CreateClient(store.Client{Name: "orders-api"})
	spa := env.CreateClient(store.Client{Name: "admin-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	root := env.CreateUser("root", "admin")
	sam := env.CreateUser("sam", "support")
	dana := env.CreateUser("dana", "customer")
	admin := call{env, env.AdminToken(store.KindUser, root.ID, spa.Client)}
	plain := call{env, env.Token(store.KindUser, sam.ID, spa.Client, "read")}

	if code, body := (call{env: env}).do(t, "GET", "/admin/v1/policies", nil); code != 401 || body["error"] != "invalid_token" {
		t.Fatalf("no token: %d %v", code, body)
	}
	if code, body := plain.do(t, "GET", "/admin/v1/policies", nil); code != 401 || !strings.Contains(body["error_description"].(string), "not issued for the admin API") {
		t.Fatalf("non-admin: %d %v", code, body)
	}
	rule := map[string]any{"mode": "impersonation", "actors": map[string]any{"roles": []string{"support"}}, "subjects": map[string]any{"roles": []string{"customer"}},
		"clients": []string{spa.ID}, "audiences": []string{api.ID}, "scopes": []string{"read"}, "max_ttl": "5m"}
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/support", rule); code != 200 || body["name"] != "support" {
		t.Fatalf("put policy: %d %v", code, body)
	}
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/bad", map[string]any{"mode": "impersonate"}); code != 400 || !strings.Contains(body["error_description"].(string), "mode") {
		t.Fatalf("invalid policy: %d %v", code, body)
	}
	if code, body := admin.do(t, "PUT", "/admin/v1/policies/x", map[string]any{"modee": "x"}); code != 400 {
		t.Fatalf("unknown field: %d %v", code, body)
	}
	_, list := admin.do(t, "GET", "/admin/v1/policies", nil)
	if rules := list["rules"].([]any); len(rules) != 1 {
		t.Fatalf("list: %v", list)
	}
	_, check := admin.do(t, "POST", "/admin/v1/policies/check", map[string]any{"actor": sam.ID, "subject": dana.ID, "client": spa.ID, "scope": []string{"read"}, "actor_scope": []string{"read"}})
	if check["allowed"] != true || check["rule"] != "support" || check["ttl_seconds"].(float64) != 300 {
		t.Fatalf("check: %v", check)
	}

	code, tok := env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "client_id": spa.ID,
		"subject_token": dana.ID, "subject_token_type": "urn:zitadel:params:oauth:token-type:user_id", "actor_token": plain.token,
		"actor_token_type": "urn:ietf:params:oauth:token-type:access_token"}, "", "")
	if code != 200 {
		t.Fatalf("impersonation: %v", tok)
	}
	imp := tok["access_token"].(string)

	req, _ := http.NewRequest("GET", env.URL+"/oidc/v1/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+imp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ui map[string]any
	json.NewDecoder(resp.Body).Decode(&ui)
	resp.Body.Close()
	if ui["sub"] != dana.ID || ui["act"].(map[string]any)["sub"] != sam.ID {
		t.Fatalf("userinfo must show act: %v", ui)
	}
	if code, body := (call{env, imp}).do(t, "GET", "/admin/v1/policies", nil); code != 403 || !strings.Contains(body["error_description"].(string), "token exchange") {
		t.Fatalf("an impersonation token must not reach the admin API: %d %v", code, body)
	}

	_, sessions := admin.do(t, "GET", "/admin/v1/impersonations", nil)
	list2 := sessions["sessions"].([]any)
	if len(list2) != 1 || sessions["impersonation_disabled"] != false {
		t.Fatalf("sessions: %v", sessions)
	}
	id := list2[0].(map[string]any)["ID"].(string)
	if code, body := admin.do(t, "POST", "/admin/v1/impersonations/"+id+"/end", map[string]string{"reason": "customer asked"}); code != 200 {
		t.Fatalf("end: %d %v", code, body)
	}
	if _, info := env.PostForm("/oauth/v2/introspect", map[string]string{"token": imp}, api.ID, api.Secret); info["active"] != false {
		t.Fatalf("token of an ended session: %v", info)
	}
	if code, _ := admin.do(t, "POST", "/admin/v1/impersonations/nope/end", nil); code != 404 {
		t.Fatalf("unknown session: %d", code)
	}
	if code, _ := admin.do(t, "POST", "/admin/v1/impersonation/disable", map[string]string{"reason": "incident"}); code != 200 {
		t.Fatal("disable")
	}
	if _, s := admin.do(t, "GET", "/admin/v1/impersonations", nil); s["impersonation_disabled"] != true {
		t.Fatalf("kill switch state: %v", s)
	}
	_, events := admin.do(t, "GET", "/admin/v1/audit?type=impersonation.ended", nil)
	if ev := events["events"].([]any); len(ev) != 1 || ev[0].(map[string]any)["actor"] != "user:"+root.ID {
		t.Fatalf("audit: %v", events)
	}
	if _, v := admin.do(t, "GET", "/admin/v1/audit/verify", nil); v["intact"] != true {
		t.Fatalf("verify: %v", v)
	}
}
