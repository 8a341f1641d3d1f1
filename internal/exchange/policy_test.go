package exchange

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
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

// memRules is a RuleStore in memory, for the policy's own logic (the store's behaviour is stated
// by the conformance suite).
type memRules struct{ rules map[string]store.ExchangeRule }

func (m *memRules) ListExchangeRules(context.Context) ([]store.ExchangeRule, error) {
	var out []store.ExchangeRule
	for _, r := range m.rules {
		out = append(out, r)
	}
	return out, nil
}

func (m *memRules) PutExchangeRule(_ context.Context, r *store.ExchangeRule) error {
	m.rules[r.Name] = *r
	return nil
}

func (m *memRules) DeleteExchangeRule(_ context.Context, name string) error {
	delete(m.rules, name)
	return nil
}

// TestRuleNamesAreUniqueAcrossStoreAndFile: a refresh re-checks its session's rule by name and the
// audit log names rules, so one name means one rule: a stored rule cannot take a file rule's name,
// a file cannot bring a stored rule's name, and should both exist (stored by another replica) the
// file's is the one in force.
func TestRuleNamesAreUniqueAcrossStoreAndFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	os.WriteFile(file, []byte(policyYAML), 0o600)
	st := &memRules{rules: map[string]store.ExchangeRule{}}
	p := NewPolicy(st, file)
	if err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	stored := Rule{Name: "agent", Mode: ModeDelegation, Actors: Selector{ServiceAccounts: []string{"x"}}, Subjects: Subjects{Users: []string{"*"}}, Audiences: []string{"hr-api"}}
	if err := p.Put(ctx, stored); err == nil || !strings.Contains(err.Error(), "defined in the policy file") {
		t.Fatalf("a stored rule took a file rule's name: %v", err)
	}
	// Another replica (without the file) stored one anyway: the file's rule is in force, once.
	body, _ := json.Marshal(stored)
	st.rules["agent"] = store.ExchangeRule{Name: "agent", Body: body}
	p.Invalidate(store.Change{Kind: store.ChangeExchangeRule, Key: "agent"})
	rules, _ := p.Rules(ctx)
	n := 0
	for _, r := range rules {
		if r.Name == "agent" {
			n++
			if r.Source != file || r.Audiences[0] != "orders-api" {
				t.Fatalf("the stored rule shadowed the file's: %+v", r)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d rules named agent in force", n)
	}
	// Reloading a file that names a stored rule is refused; the previous file rules stay.
	if err := p.LoadFile(); err == nil || !strings.Contains(err.Error(), "names must be unique") {
		t.Fatalf("a file rule shares a stored rule's name: %v", err)
	}
	if r, _ := p.Rule(ctx, "support-impersonates-customers"); r == nil {
		t.Fatal("a refused reload dropped the file's rules")
	}
}

// TestAPutAppliesAtOnceHere: the process that changes a rule uses the new rule on its next request,
// without waiting for the change feed, even when a load raced the change.
func TestAPutAppliesAtOnceHere(t *testing.T) {
	ctx := context.Background()
	st := &memRules{rules: map[string]store.ExchangeRule{}}
	p := NewPolicy(st, "")
	r := Rule{Name: "r", Mode: ModeDelegation, Actors: Selector{ServiceAccounts: []string{"x"}}, Subjects: Subjects{Users: []string{"*"}}, Audiences: []string{"a"}, Scopes: []string{"read", "write"}}
	if err := p.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Rule(ctx, "r"); got == nil || len(got.Scopes) != 2 {
		t.Fatalf("%+v", got)
	}
	r.Scopes = []string{"read"}
	if err := p.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Rule(ctx, "r"); len(got.Scopes) != 1 {
		t.Fatalf("a narrowed rule is not in force at once: %+v", got)
	}
}
