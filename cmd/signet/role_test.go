package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
)

// TestCLIRolesUsersDefine: the customer role of docs/token-exchange.md can be created, rules refuse
// roles and principals that do not exist, and a role cannot be deleted while it is built in,
// granted, or named by a rule, each refusal saying which.
func TestCLIRolesUsersDefine(t *testing.T) {
	dir := t.TempDir()
	var api, spa map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	cliJSON(t, dir, &spa, "client", "create", "--name", "admin-spa", "--type", "spa", "--grant", "token-exchange", "--redirect-uri", "https://admin.example.com/callback")
	apiID, spaID := api["client_id"].(string), spa["client_id"].(string)
	rule := []string{"policy", "add", "--name", "support-impersonates-customers", "--mode", "impersonation", "--actor-role", "support",
		"--subject-role", "customer", "--client", spaID, "--audience", apiID}

	_, err := cli(t, dir, rule...)
	if err == nil || !strings.Contains(err.Error(), `subjects.roles: no role "customer"`) || !strings.Contains(err.Error(), "signet role create") {
		t.Fatalf("a rule naming a role that does not exist: %v", err)
	}
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"--actor-user", "nobody", `actors.users: no user with ID or username "nobody"`},
		{"--actor-serviceaccount", "ghost-bot", `actors.service_accounts: no service account with ID or name "ghost-bot"`},
		{"--actor-client", "no-such-app", `actors.clients: no client with ID "no-such-app"`},
		{"--exclude-user", "vpi", `subjects.exclude_users: no user with ID or username "vpi"`},
		{"--actor-token-client", "no-such-spa", `actor_token_clients: no client or service account with ID "no-such-spa"`},
		{"--client", "no-such-client", `clients: no client or service account with ID "no-such-client"`},
	} {
		args := []string{"policy", "add", "--name", "r", "--mode", "delegation", "--actor-role", "support", "--subject-user", "*", "--audience", apiID, tc.flag, tc.value}
		if _, err := cli(t, dir, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: want %q, got %v", tc.flag, tc.value, tc.want, err)
		}
	}

	var role map[string]any
	cliJSON(t, dir, &role, "role", "create", "customer", "--description", "people who buy")
	if role["name"] != "customer" || role["description"] != "people who buy" || role["built_in"] != false {
		t.Fatalf("role create: %v", role)
	}
	if _, err := cli(t, dir, "role", "create", "customer"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a second role with the name: %v", err)
	}
	if _, err := cli(t, dir, "role", "create", "auditor", "--permission", "signet:audit"); err == nil || !strings.Contains(err.Error(), "signet:introspect") {
		t.Fatalf("a permission Signet does not know: %v", err)
	}
	if _, err := cli(t, dir, "role", "create", "two words"); err == nil || !strings.Contains(err.Error(), "role name") {
		t.Fatalf("a role name with a space: %v", err)
	}
	var roles []map[string]any
	cliJSON(t, dir, &roles, "role", "list")
	var names []string
	for _, r := range roles {
		names = append(names, r["name"].(string))
	}
	if !strings.Contains(strings.Join(names, ","), "customer") || !strings.Contains(strings.Join(names, ","), "support") {
		t.Fatalf("role list: %v", roles)
	}

	var dana map[string]any
	cliJSON(t, dir, &dana, "user", "create", "--username", "dana", "--role", "customer")
	if _, err := cli(t, dir, "role", "delete", "customer"); err == nil || !strings.Contains(err.Error(), "still granted to user dana") {
		t.Fatalf("deleting a granted role: %v", err)
	}
	if _, err := cli(t, dir, rule...); err != nil {
		t.Fatalf("the rule, once its role exists: %v", err)
	}
	cliJSON(t, dir, &role, "role", "revoke", "customer", "--user", "dana")
	if _, err := cli(t, dir, "role", "delete", "customer"); err == nil || !strings.Contains(err.Error(), `named by exchange rule "support-impersonates-customers"`) {
		t.Fatalf("deleting a role a rule names: %v", err)
	}
	if _, err := cli(t, dir, "role", "delete", "support"); err == nil || !strings.Contains(err.Error(), "built in") {
		t.Fatalf("deleting a built-in role: %v", err)
	}
	if _, err := cli(t, dir, "role", "delete", "nosuch"); err == nil || !strings.Contains(err.Error(), `no role "nosuch"`) {
		t.Fatalf("deleting a missing role: %v", err)
	}
	if _, err := cli(t, dir, "policy", "remove", "support-impersonates-customers"); err != nil {
		t.Fatal(err)
	}
	var deleted map[string]any
	cliJSON(t, dir, &deleted, "role", "delete", "customer")
	if _, err := cli(t, dir, "role", "grant", "customer", "--user", "dana"); err == nil {
		t.Fatal("a deleted role can still be granted")
	}
	var events []map[string]any
	cliJSON(t, dir, &events, "audit", "list", "--type", "role.changed")
	var actions []string
	for _, e := range events {
		actions = append(actions, string(mustJSON(e["details"])))
	}
	if all := strings.Join(actions, "\n"); !strings.Contains(all, `"action":"created"`) || !strings.Contains(all, `"action":"deleted"`) || strings.Count(all, `"action":"deleted"`) != 1 {
		t.Fatalf("role changes are audited, refusals are not: %v", actions)
	}
}

// TestCLIPolicyCheckSeesGrantsAndExitCodes: `policy check` answers what the token endpoint would
// (a client lacking the token-exchange grant is refused with the endpoint's words), and its exit
// status says allowed (0), denied (1) or usage error (2).
func TestCLIPolicyCheckSeesGrantsAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	var api, backend map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	cliJSON(t, dir, &backend, "client", "create", "--name", "support-backend")
	apiID, backendID := api["client_id"].(string), backend["client_id"].(string)
	var sam, dana map[string]any
	cliJSON(t, dir, &sam, "user", "create", "--username", "sam", "--role", "support", "--generate-password")
	cliJSON(t, dir, &dana, "user", "create", "--username", "dana")
	if _, err := cli(t, dir, "policy", "add", "--name", "support", "--mode", "impersonation", "--actor-role", "support",
		"--subject-user", "*", "--client", backendID, "--audience", apiID, "--scope", "read"); err != nil {
		t.Fatal(err)
	}
	check := []string{"policy", "check", "--actor", "sam", "--subject", "dana", "--client", backendID, "--scope", "read"}

	out, err := cli(t, dir, check...)
	if code := exitStatus(err); code != 1 || !strings.Contains(out, "DENY") ||
		!strings.Contains(out, "unauthorized_client: client "+`"`+backendID+`"`+" may not use grant_type urn:ietf:params:oauth:grant-type:token-exchange") {
		t.Fatalf("a client without the token-exchange grant: exit %d, %q", code, out)
	}
	var updated map[string]any
	cliJSON(t, dir, &updated, "client", "update", backendID, "--add-grant", "token-exchange")
	if out, err := cli(t, dir, check...); exitStatus(err) != 0 || !strings.HasPrefix(out, `ALLOW (impersonation) by rule "support"`) {
		t.Fatalf("with the grant: exit %d, %q", exitStatus(err), out)
	}
	if out, err := cli(t, dir, append(check, "--requested-token-type", "refresh_token")...); exitStatus(err) != 1 || !strings.Contains(out, "does not allow refresh tokens") {
		t.Fatalf("a refresh token the rule does not allow: exit %d, %q", exitStatus(err), out)
	}
	cliJSON(t, dir, &updated, "client", "update", backendID, "--disable")
	if out, err := cli(t, dir, check...); exitStatus(err) != 1 || !strings.Contains(out, "invalid_client: client "+`"`+backendID+`"`+" is disabled") {
		t.Fatalf("a disabled client: exit %d, %q", exitStatus(err), out)
	}
	for _, args := range [][]string{
		{"policy", "check", "--actor", "sam", "--subject", "dana"},
		{"policy", "check", "--actor", "nobody", "--subject", "dana", "--client", backendID},
		{"policy", "check", "--actor", "sam", "--subject", "dana", "--client", "no-such-client"},
		{"policy", "check", "--actor", "sam", "--subject", "dana", "--client", backendID, "--ttl", "soon"},
		{"policy", "check", "--no-such-flag"},
		{"policy", "check", "extra"},
	} {
		if _, err := cli(t, dir, args...); exitStatus(err) != 2 {
			t.Errorf("%v: want exit 2 (usage error), got %d: %v", args[2:], exitStatus(err), err)
		}
	}
}

// exitStatus is the status main exits with for a command's error.
func exitStatus(err error) int {
	var ec *exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return ec.code
	}
	return 1
}

// TestCLIPolicyAddTakesEveryRuleField round-trips every field of the rule schema
// (exchange.RuleFields) through `policy add` flags and `policy list --json`.
func TestCLIPolicyAddTakesEveryRuleField(t *testing.T) {
	dir := t.TempDir()
	var api, spa, agent, bot map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	cliJSON(t, dir, &spa, "client", "create", "--name", "admin-spa", "--type", "spa", "--grant", "token-exchange", "--redirect-uri", "https://admin.example.com/callback")
	cliJSON(t, dir, &agent, "client", "create", "--name", "agent-app", "--grant", "token-exchange")
	cliJSON(t, dir, &bot, "serviceaccount", "create", "--name", "bot")
	var role, u map[string]any
	cliJSON(t, dir, &role, "role", "create", "customer", "--description", "people who buy")
	for _, name := range []string{"sam", "dana", "olga"} {
		cliJSON(t, dir, &u, "user", "create", "--username", name)
	}
	apiID, spaID, agentID := api["client_id"].(string), spa["client_id"].(string), agent["client_id"].(string)
	want := exchange.Rule{
		Name: "every-field", Mode: exchange.ModeImpersonation,
		Actors:            exchange.Selector{Users: []string{"sam"}, Roles: []string{"support"}, ServiceAccounts: []string{"bot"}, Clients: []string{agentID}},
		Subjects:          exchange.Subjects{Users: []string{"dana"}, Roles: []string{"customer"}, ExcludeUsers: []string{"olga"}, ExcludeRoles: []string{"admin"}},
		Clients:           []string{spaID},
		ActorTokenClients: []string{agentID},
		Audiences:         []string{apiID},
		Scopes:            []string{"read", "write"},
		MaxTTL:            exchange.Duration(10 * time.Minute),
		RequireReason:     true,
		AllowRefresh:      true,
		RefreshTTL:        exchange.Duration(2 * time.Hour),
		NotifySubject:     true,
		RequireActorMFA:   exchange.Duration(15 * time.Minute),
		Disabled:          true,
	}
	if _, err := cli(t, dir, "policy", "add", "--name", "every-field", "--mode", "impersonation",
		"--actor-user", "sam", "--actor-role", "support", "--actor-serviceaccount", "bot", "--actor-client", agentID,
		"--subject-user", "dana", "--subject-role", "customer", "--exclude-user", "olga", "--exclude-role", "admin",
		"--client", spaID, "--actor-token-client", agentID, "--audience", apiID, "--scope", "read", "--scope", "write",
		"--max-ttl", "10m", "--require-reason", "--allow-refresh", "--refresh-ttl", "2h", "--notify-subject", "--require-actor-mfa", "15m", "--disabled"); err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	cliJSON(t, dir, &raw, "policy", "list")
	if len(raw) != 1 {
		t.Fatalf("policy list: %v", raw)
	}
	for _, f := range exchange.RuleFields() {
		var v any = raw[0]
		for _, part := range strings.Split(f, ".") {
			v = v.(map[string]any)[part]
		}
		if v == nil {
			t.Errorf("field %s did not survive `policy add` (a flag is missing?): %v", f, raw[0])
		}
	}
	var got []exchange.Rule
	cliJSON(t, dir, &got, "policy", "list")
	if !reflect.DeepEqual(got[0], want) {
		t.Fatalf("policy add → list:\n got %+v\nwant %+v", got[0], want)
	}
}

// TestCLIClientUpdateAddsAndRemoves: --add-X/--remove-X change one entry of a client's grants,
// scopes, audiences and redirect URIs and keep the rest; --X replaces the whole list; mistakes are
// refused with the list as it stands.
func TestCLIClientUpdateAddsAndRemoves(t *testing.T) {
	dir := t.TempDir()
	var api, other, app map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	cliJSON(t, dir, &other, "client", "create", "--name", "billing-api")
	apiID, otherID := api["client_id"].(string), other["client_id"].(string)
	cliJSON(t, dir, &app, "client", "create", "--name", "app", "--type", "web", "--grant", "client_credentials",
		"--scope", "read", "--audience", apiID, "--redirect-uri", "https://app.example/cb")
	id := app["client_id"].(string)
	list := func(v map[string]any, key string) string {
		var out []string
		for _, x := range v[key].([]any) {
			out = append(out, x.(string))
		}
		return strings.Join(out, " ")
	}
	var got map[string]any
	cliJSON(t, dir, &got, "client", "update", id, "--add-grant", "token-exchange", "--add-scope", "write", "--add-audience", otherID,
		"--add-redirect-uri", "https://app.example/cb2")
	if list(got, "grant_types") != "client_credentials urn:ietf:params:oauth:grant-type:token-exchange" || list(got, "scopes") != "read write" ||
		list(got, "audiences") != apiID+" "+otherID || list(got, "redirect_uris") != "https://app.example/cb https://app.example/cb2" {
		t.Fatalf("--add-X keeps the rest: %v", got)
	}
	cliJSON(t, dir, &got, "client", "update", id, "--remove-grant", "client_credentials", "--remove-scope", "read", "--remove-audience", apiID,
		"--remove-redirect-uri", "https://app.example/cb")
	if list(got, "grant_types") != "urn:ietf:params:oauth:grant-type:token-exchange" || list(got, "scopes") != "write" ||
		list(got, "audiences") != otherID || list(got, "redirect_uris") != "https://app.example/cb2" {
		t.Fatalf("--remove-X keeps the rest: %v", got)
	}
	cliJSON(t, dir, &got, "client", "update", id, "--grant", "client_credentials")
	if list(got, "grant_types") != "client_credentials" || list(got, "scopes") != "write" {
		t.Fatalf("--grant replaces the grants and only them: %v", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--grant", "jwt-bearer", "--add-grant", "refresh_token"}, "--grant replaces the whole list"},
		{[]string{"--remove-scope", "read"}, `--remove-scope read: client "` + id + `" does not have it; its scopes are: write`},
		{[]string{"--add-audience", "x", "--remove-audience", "x"}, "--add-audience and --remove-audience both name x"},
		{[]string{"--add-grant", "implicit"}, "supported grants"},
		{[]string{"--add-audience", "no-such-api"}, "no client has this ID"},
	} {
		if _, err := cli(t, dir, append([]string{"client", "update", id}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("update %v: want %q, got %v", tc.args, tc.want, err)
		}
	}
	out, err := cli(t, dir, "client", "update", "--help")
	if err != nil || !strings.Contains(out, "REPLACE the whole list") || !strings.Contains(out, "--add-redirect-uri") {
		t.Fatalf("help says --X replaces: %v\n%s", err, out)
	}
}
