package exchange

import (
	"strings"
	"testing"
	"time"
)

const policyYAML = `rules:
  - name: support-impersonates-customers
    mode: impersonation
    actors: {roles: [support]}
    subjects: {roles: [customer], exclude_users: [vip]}
    clients: [admin-spa]
    audiences: [orders-api]
    scopes: [read]
    max_ttl: 10m
    require_reason: true
  - name: agent
    mode: delegation
    actors: {service_accounts: [agent]}
    subjects: {users: ["*"]}
    audiences: [orders-api]
`

func TestParseFile(t *testing.T) {
	rules, err := ParseFile("policy.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].TTL() != 10*time.Minute || !rules[0].RequireReason || rules[1].Source != "policy.yaml" || rules[1].TTL() != time.Hour {
		t.Fatalf("%+v", rules)
	}
	for _, tc := range []struct{ yaml, want string }{
		{strings.Replace(policyYAML, "scopes: [read]", "scope: [read]", 1), `policy.yaml:2: line 8: unknown key "scope"`},
		{strings.Replace(policyYAML, "mode: delegation", "mode: delegate", 1), `policy.yaml:11: rule "agent": mode "delegate"`},
		{strings.Replace(policyYAML, "max_ttl: 10m", "max_ttl: 3h", 1), "policy.yaml:2:"},
		{strings.Replace(policyYAML, "name: agent", "name: support-impersonates-customers", 1), "already defined at line 2"},
		{strings.Replace(policyYAML, "actors: {roles: [support]}", "actors: {role: [support]}", 1), `unknown key "role" in actors`},
		{"rules: [", "policy.yaml: yaml"},
	} {
		if _, err := ParseFile("policy.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
}
