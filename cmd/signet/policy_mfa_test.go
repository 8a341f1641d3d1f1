package main

import (
	"strings"
	"testing"
)

// TestCLIPolicyRequireActorMFA: `policy add --require-actor-mfa` stores the window, `policy list`
// shows it, `policy check` says the allowance holds only with a fresh second factor (which it
// cannot see), and a delegation rule asking for it is refused.
func TestCLIPolicyRequireActorMFA(t *testing.T) {
	dir := t.TempDir()
	var api, spa, agent map[string]any
	cliJSON(t, dir, &api, "client", "create", "--name", "orders-api")
	cliJSON(t, dir, &spa, "client", "create", "--name", "admin-spa", "--type", "spa", "--redirect-uri", "https://admin.example.com/callback", "--grant", "urn:ietf:params:oauth:grant-type:token-exchange")
	cliJSON(t, dir, &agent, "serviceaccount", "create", "--name", "agent")
	apiID, spaID := api["client_id"].(string), spa["client_id"].(string)
	var sam, dana map[string]any
	cliJSON(t, dir, &sam, "user", "create", "--username", "sam", "--role", "support", "--generate-password")
	cliJSON(t, dir, &dana, "user", "create", "--username", "dana")
	if _, err := cli(t, dir, "policy", "add", "--name", "support-mfa", "--mode", "impersonation", "--actor-role", "support",
		"--subject-user", "*", "--client", spaID, "--audience", apiID, "--scope", "read", "--require-actor-mfa", "15m"); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, dir, "policy", "list")
	if err != nil || !strings.Contains(out, "ACTOR MFA") || !strings.Contains(out, "within 15m0s") {
		t.Fatalf("policy list: %v\n%s", err, out)
	}
	out, err = cli(t, dir, "policy", "check", "--actor", "sam", "--subject", "dana", "--client", spaID, "--scope", "read")
	if err != nil || !strings.Contains(out, `ALLOW (impersonation) by rule "support-mfa"`) ||
		!strings.Contains(out, "only if the actor token comes from a sign-in that passed a second factor within 15m0s (assumed here)") {
		t.Fatalf("policy check: %v\n%s", err, out)
	}
	var check map[string]any
	cliJSON(t, dir, &check, "policy", "check", "--actor", "sam", "--subject", "dana", "--client", spaID, "--scope", "read")
	if check["allowed"] != true || check["require_actor_mfa"] != "15m0s" {
		t.Fatalf("policy check --json: %v", check)
	}
	if _, err := cli(t, dir, "policy", "add", "--name", "agent-mfa", "--mode", "delegation", "--actor-serviceaccount", "agent",
		"--subject-user", "*", "--audience", apiID, "--require-actor-mfa", "5m"); err == nil || !strings.Contains(err.Error(), "require_actor_mfa applies to impersonation only") {
		t.Fatalf("a delegation rule with require_actor_mfa: %v", err)
	}
}
