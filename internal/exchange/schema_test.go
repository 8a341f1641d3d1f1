package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-id/signet/internal/store"
)

// everyField is a valid rule with every field set, so a round trip that drops one shows.
func everyField() Rule {
	return Rule{
		Name: "every-field", Mode: ModeImpersonation,
		Actors:            Selector{Users: []string{"sam"}, Roles: []string{"support"}, ServiceAccounts: []string{"bot"}, Clients: []string{"agent-app"}},
		Subjects:          Subjects{Users: []string{"dana"}, Roles: []string{"customer"}, ExcludeUsers: []string{"olga"}, ExcludeRoles: []string{"admin"}},
		Clients:           []string{"admin-spa"},
		ActorTokenClients: []string{"agent-app"},
		Audiences:         []string{"orders-api"},
		Scopes:            []string{"read", "write"},
		MaxTTL:            Duration(10 * time.Minute),
		RequireReason:     true,
		AllowRefresh:      true,
		RefreshTTL:        Duration(2 * time.Hour),
		NotifySubject:     true,
		RequireActorMFA:   Duration(15 * time.Minute),
		Disabled:          true,
	}
}

// unset lists the fields of v (a struct, nested structs walked) that hold their zero value.
func unset(v reflect.Value, prefix string) []string {
	var out []string
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		name := prefix + yamlKey(f)
		switch {
		case yamlKey(f) == "":
		case f.Type.Kind() == reflect.Struct:
			out = append(out, unset(fv, name+".")...)
		case fv.IsZero():
			out = append(out, name)
		}
	}
	return out
}

// TestRuleHasOneSchema: the policy file's keys, the admin API's JSON fields and the CLI's flags
// (cmd/signet TestCLIPolicyAddTakesEveryRuleField) are the Rule type's, with the same names.
func TestRuleHasOneSchema(t *testing.T) {
	var walk func(t reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			j, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if y := yamlKey(f); j != y && !(j == "-" && y == "") {
				t.Errorf("%s.%s: json %q and yaml %q differ: the admin API and the policy file must share one schema", typ.Name(), f.Name, j, y)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Rule]())
	if missing := unset(reflect.ValueOf(everyField()), ""); len(missing) > 0 {
		t.Fatalf("everyField leaves %v unset; set them so the round trips cover them", missing)
	}
	if got := len(RuleFields()); got != 21 {
		t.Errorf("RuleFields: %d fields %v; update the docs and this count when a field is added", got, RuleFields())
	}
}

// TestPolicyFileTakesEveryRuleField round-trips every field through the policy file and through
// JSON (the admin API and the store), refresh_ttl included.
func TestPolicyFileTakesEveryRuleField(t *testing.T) {
	want := everyField()
	b, err := yaml.Marshal(map[string][]Rule{"rules": {want}})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"refresh_ttl: 2h0m0s", "allow_refresh: true", "notify_subject: true", "require_actor_mfa: 15m0s", "actor_token_clients:", "exclude_roles:"} {
		if !strings.Contains(string(b), key) {
			t.Fatalf("the file lacks %q:\n%s", key, b)
		}
	}
	rules, err := ParseFile("policy.yaml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	want.Source = "policy.yaml"
	if len(rules) != 1 || !reflect.DeepEqual(rules[0], want) {
		t.Fatalf("through the file:\n got %+v\nwant %+v", rules, want)
	}
	j, _ := json.Marshal(want)
	var back Rule
	dec := json.NewDecoder(strings.NewReader(string(j)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	back.Source = want.Source
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("through JSON:\n got %+v\nwant %+v", back, want)
	}
	// A file written by hand, as docs/token-exchange.md shows it.
	hand := `rules:
  - name: staff-refresh
    mode: impersonation
    actors: {roles: [support]}
    subjects: {roles: [customer]}
    audiences: [orders-api]
    max_ttl: 15m
    allow_refresh: true
    refresh_ttl: 1h
`
	if rules, err := ParseFile("policy.yaml", []byte(hand)); err != nil || time.Duration(rules[0].RefreshTTL) != time.Hour {
		t.Fatalf("refresh_ttl in a policy file: %+v %v", rules, err)
	}
	if _, err := ParseFile("policy.yaml", []byte(strings.Replace(hand, "refresh_ttl", "refresh_tll", 1))); err == nil || !strings.Contains(err.Error(), `unknown key "refresh_tll"; a rule's keys are: actor_token_clients, actors, allow_refresh`) {
		t.Fatalf("a misspelt key: %v", err)
	}
}

// TestDocsNameEveryRuleField: docs/token-exchange.md documents every field the schema has.
func TestDocsNameEveryRuleField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/token-exchange.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range RuleFields() {
		leaf := f[strings.LastIndex(f, ".")+1:]
		if !strings.Contains(string(doc), "`"+leaf+"`") {
			t.Errorf("docs/token-exchange.md does not document rule field %s", f)
		}
	}
}

// names is a Names with a fixed directory.
type names struct {
	roles, users, accounts, clients []string
}

func (n names) lookup(list []string, v string) error {
	if slices.Contains(list, v) {
		return nil
	}
	return store.ErrNotFound
}

func (n names) GetRole(_ context.Context, v string) (*store.Role, error) {
	return &store.Role{Name: v}, n.lookup(n.roles, v)
}
func (n names) GetUser(_ context.Context, v string) (*store.User, error) {
	return &store.User{ID: v}, n.lookup(n.users, "id:"+v)
}
func (n names) GetUserByUsername(_ context.Context, v string) (*store.User, error) {
	return &store.User{Username: v}, n.lookup(n.users, v)
}
func (n names) GetServiceAccount(_ context.Context, v string) (*store.ServiceAccount, error) {
	return &store.ServiceAccount{ID: v}, n.lookup(n.accounts, "id:"+v)
}
func (n names) GetServiceAccountByName(_ context.Context, v string) (*store.ServiceAccount, error) {
	return &store.ServiceAccount{ID: "sa-" + v, Name: v}, n.lookup(n.accounts, v)
}
func (n names) GetClient(_ context.Context, v string) (*store.Client, error) {
	return &store.Client{ID: v}, n.lookup(n.clients, v)
}

// namedRules is a rule store that can look names up, as the real store can.
type namedRules struct {
	memRules
	names
}

// TestRulesRefuseUnknownNames: every place a rule names a role, user, service account or client is
// checked, in rules put through the policy (the CLI and the admin API) and in the policy file, which
// refuses to load (the server does not start) with the file, the field and the name.
func TestRulesRefuseUnknownNames(t *testing.T) {
	known := names{roles: []string{"support", "customer", "admin"}, users: []string{"sam", "dana", "olga"}, accounts: []string{"bot", "id:sa-agent"},
		clients: []string{"agent-app", "admin-spa"}}
	st := &namedRules{memRules{rules: map[string]store.ExchangeRule{}}, known}
	p := NewPolicy(st, "")
	ctx := context.Background()
	r := everyField()
	r.Disabled = false
	if err := p.Put(ctx, r); err != nil {
		t.Fatalf("a rule naming what exists: %v", err)
	}
	r.Clients = []string{"sa-agent"} // a service account requests by its ID
	if err := p.Put(ctx, r); err != nil {
		t.Fatalf("a service account as requesting client: %v", err)
	}
	for _, tc := range []struct {
		edit func(r *Rule)
		want string
	}{
		{func(r *Rule) { r.Subjects.Roles = []string{"customers"} }, `subjects.roles: no role "customers"`},
		{func(r *Rule) { r.Actors.Roles = []string{"suport"} }, `actors.roles: no role "suport"`},
		{func(r *Rule) { r.Subjects.ExcludeRoles = []string{"admins"} }, `subjects.exclude_roles: no role "admins"`},
		{func(r *Rule) { r.Actors.Users = []string{"sma"} }, `actors.users: no user with ID or username "sma"`},
		{func(r *Rule) { r.Subjects.Users = []string{"dnaa"} }, `subjects.users: no user with ID or username "dnaa"`},
		{func(r *Rule) { r.Subjects.ExcludeUsers = []string{"olg"} }, `subjects.exclude_users: no user with ID or username "olg"`},
		{func(r *Rule) { r.Actors.ServiceAccounts = []string{"bott"} }, `actors.service_accounts: no service account with ID or name "bott"`},
		{func(r *Rule) { r.Actors.Clients = []string{"agent"} }, `actors.clients: no client with ID "agent"`},
		{func(r *Rule) { r.Clients = []string{"admin-sap"} }, `clients: no client or service account with ID "admin-sap"`},
		{func(r *Rule) { r.Clients = []string{"bot"} }, `service account "bot" requests by its ID: write sa-bot`},
		{func(r *Rule) { r.ActorTokenClients = []string{"spa"} }, `actor_token_clients: no client or service account with ID "spa"`},
	} {
		bad := everyField()
		tc.edit(&bad)
		err := p.Put(ctx, bad)
		var invalid *InvalidRule
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
	everyone := everyField()
	everyone.Subjects.Users = []string{"*"}
	if err := p.Check(ctx, everyone); err != nil {
		t.Errorf(`subjects.users "*" is everyone, not a name: %v`, err)
	}

	file := t.TempDir() + "/policy.yaml"
	os.WriteFile(file, []byte("rules:\n  - name: file-rule\n    mode: impersonation\n    actors: {roles: [support]}\n    subjects: {roles: [customer]}\n    audiences: [orders-api]\n"), 0o600)
	if err := NewPolicy(st, file).Load(ctx); err != nil {
		t.Fatalf("a file naming what exists: %v", err)
	}
	os.WriteFile(file, []byte("rules:\n  - name: file-rule\n    mode: impersonation\n    actors: {roles: [support]}\n    subjects: {roles: [vip]}\n    audiences: [orders-api]\n"), 0o600)
	if err := NewPolicy(st, file).Load(ctx); err == nil || !strings.Contains(err.Error(), file+`: rule "file-rule" names what does not exist: subjects.roles: no role "vip"`) {
		t.Fatalf("a file naming a role that does not exist: %v", err)
	}
}
