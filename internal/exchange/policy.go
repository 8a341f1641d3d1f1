package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-id/signet/internal/changefeed"
	"github.com/signet-id/signet/internal/store"
)

// RuleStore is the part of the store that holds rules.
type RuleStore interface {
	ListExchangeRules(ctx context.Context) ([]store.ExchangeRule, error)
	PutExchangeRule(ctx context.Context, r *store.ExchangeRule) error
	DeleteExchangeRule(ctx context.Context, name string) error
}

// Policy is the rule set in force: the store's rules plus an optional policy file's. Rule names are
// unique across both. The stored rules are cached and dropped when the change feed reports a rule
// change (or at once when this process changes them); the file is reread on SIGHUP.
type Policy struct {
	st    RuleStore
	names Names // nil: names are not checked (a store that cannot look them up)
	file  string

	stored changefeed.Cached[[]Rule]

	mu       sync.RWMutex
	fromFile []Rule
}

// NewPolicy returns the policy over st, with rules also read from file when it is not empty. When
// st can look names up (the store can), every rule put or read from the file must name only roles,
// users, service accounts and clients that exist (CheckNames).
func NewPolicy(st RuleStore, file string) *Policy {
	p := &Policy{st: st, file: file}
	p.names, _ = st.(Names)
	return p
}

// checkNames applies CheckNames when the policy can look names up.
func (p *Policy) checkNames(ctx context.Context, r *Rule) error {
	if p.names == nil {
		return nil
	}
	return CheckNames(ctx, p.names, r)
}

// Load reads the store's rules and the policy file.
func (p *Policy) Load(ctx context.Context) error {
	p.stored.Invalidate()
	if _, err := p.stored.Get(ctx, p.loadStore); err != nil {
		return err
	}
	return p.LoadFile()
}

func (p *Policy) loadStore(ctx context.Context) ([]Rule, error) {
	list, err := p.st.ListExchangeRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("exchange rules: %w", err)
	}
	rules := make([]Rule, 0, len(list))
	for _, sr := range list {
		var r Rule
		if err := json.Unmarshal(sr.Body, &r); err != nil {
			return nil, fmt.Errorf("stored exchange rule %q: %w", sr.Name, err)
		}
		r.Source = "store"
		rules = append(rules, r)
	}
	return rules, nil
}

// LoadFile (re)reads the policy file; on error the previous file rules stay in force. A file rule
// may not share its name with a stored rule: a refresh re-checks its session's rule by name, and the
// audit log names rules, so one name must mean one rule.
func (p *Policy) LoadFile() error {
	if p.file == "" {
		return nil
	}
	b, err := os.ReadFile(p.file)
	if err != nil {
		return fmt.Errorf("policy file: %w", err)
	}
	rules, err := ParseFile(p.file, b)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, r := range rules {
		if err := p.checkNames(ctx, &r); err != nil {
			return fmt.Errorf("%s: %w", p.file, err)
		}
	}
	stored, err := p.stored.Get(ctx, p.loadStore)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if slices.ContainsFunc(stored, func(s Rule) bool { return s.Name == r.Name }) {
			return fmt.Errorf("%s: rule %q is also stored (signet policy add); rule names must be unique: rename one, or remove the stored rule with `signet policy remove %s`", p.file, r.Name, r.Name)
		}
	}
	p.mu.Lock()
	p.fromFile = rules
	p.mu.Unlock()
	return nil
}

// Invalidate reacts to the change feed.
func (p *Policy) Invalidate(c store.Change) {
	if c.Kind == store.ChangeExchangeRule || c.Kind == store.ChangeResync {
		p.stored.Invalidate()
	}
}

// Rules returns every rule in force, sorted by name. Should a stored rule share a name with a file
// rule (stored by another replica that has no such file), the file rule is the one in force.
func (p *Policy) Rules(ctx context.Context) ([]Rule, error) {
	stored, err := p.stored.Get(ctx, p.loadStore)
	if err != nil {
		return nil, err
	}
	p.mu.RLock()
	file := p.fromFile
	p.mu.RUnlock()
	all := make([]Rule, 0, len(stored)+len(file))
	for _, r := range stored {
		if !slices.ContainsFunc(file, func(f Rule) bool { return f.Name == r.Name }) {
			all = append(all, r)
		}
	}
	all = append(all, file...)
	slices.SortStableFunc(all, func(a, b Rule) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

// Rule returns the rule in force with this name, or nil. A name this process does not know yet is
// looked up in the store once more before it is declared gone: another replica may have added it
// a moment ago, before the change feed said so.
func (p *Policy) Rule(ctx context.Context, name string) (*Rule, error) {
	find := func(rules []Rule) *Rule {
		if i := slices.IndexFunc(rules, func(r Rule) bool { return r.Name == name }); i >= 0 {
			return &rules[i]
		}
		return nil
	}
	rules, err := p.Rules(ctx)
	if err != nil {
		return nil, err
	}
	if r := find(rules); r != nil {
		return r, nil
	}
	if rules, err = p.Fresh(ctx); err != nil {
		return nil, err
	}
	return find(rules), nil
}

// Fresh re-reads the stored rules and returns every rule in force. The token endpoint calls it
// before refusing for want of a rule, so a rule added a moment ago by another process (the CLI)
// applies at once rather than at the next change-feed poll.
func (p *Policy) Fresh(ctx context.Context) ([]Rule, error) {
	p.stored.Invalidate()
	return p.Rules(ctx)
}

// Check says whether Put would accept the rule: it is valid, names only what exists, and is not
// the policy file's. Callers that audit a change check first, so a refused rule is not audited.
func (p *Policy) Check(ctx context.Context, r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if p.fileHas(r.Name) {
		return &InvalidRule{Reason: fmt.Sprintf("rule %q is defined in the policy file %s; change it there", r.Name, p.file)}
	}
	return p.checkNames(ctx, &r)
}

// Put checks (Check) and stores a rule; it is in force in this process at once.
func (p *Policy) Put(ctx context.Context, r Rule) error {
	if err := p.Check(ctx, r); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	defer p.stored.Invalidate()
	return p.st.PutExchangeRule(ctx, &store.ExchangeRule{Name: r.Name, Body: body, UpdatedAt: time.Now()})
}

// Remove deletes a stored rule.
func (p *Policy) Remove(ctx context.Context, name string) error {
	if p.fileHas(name) {
		return fmt.Errorf("rule %q is defined in the policy file %s; remove it there", name, p.file)
	}
	defer p.stored.Invalidate()
	return p.st.DeleteExchangeRule(ctx, name)
}

func (p *Policy) fileHas(name string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.ContainsFunc(p.fromFile, func(r Rule) bool { return r.Name == name })
}

// fileFormat is the policy file: a list of rules under "rules".
type fileFormat struct {
	Rules []yaml.Node `yaml:"rules"`
}

// ParseFile reads a YAML policy file; every error names the line it is about.
func ParseFile(path string, b []byte) ([]Rule, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rules []Rule
	seen := map[string]int{}
	for _, node := range f.Rules {
		var r Rule
		if err := node.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, node.Line, err)
		}
		if err := strictKeys(&node); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, node.Line, err)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, node.Line, err)
		}
		if line, dup := seen[r.Name]; dup {
			return nil, fmt.Errorf("%s:%d: rule %q is already defined at line %d", path, node.Line, r.Name, line)
		}
		seen[r.Name] = node.Line
		r.Source = path
		rules = append(rules, r)
	}
	return rules, nil
}

// strictKeys refuses unknown keys in a rule (a typo must not silently widen or narrow a rule). The
// keys it knows are the Rule type's own (ruleKeys), so the file, the admin API (JSON, the same tags)
// and the CLI (a flag per field) share one schema.
func strictKeys(n *yaml.Node) error {
	known, sub := ruleKeys()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, ok := known[k.Value]; !ok {
			return fmt.Errorf("line %d: unknown key %q; a rule's keys are: %s", k.Line, k.Value, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
		if allowed, ok := sub[k.Value]; ok {
			for j := 0; j+1 < len(v.Content); j += 2 {
				if _, ok := allowed[v.Content[j].Value]; !ok {
					return fmt.Errorf("line %d: unknown key %q in %s; its keys are: %s", v.Content[j].Line, v.Content[j].Value, k.Value, strings.Join(slices.Sorted(maps.Keys(allowed)), ", "))
				}
			}
		}
	}
	return nil
}

// ruleKeys lists a rule's keys as the Rule type declares them (yaml tags), and the keys of its
// nested objects (actors, subjects).
func ruleKeys() (known map[string]struct{}, sub map[string]map[string]struct{}) {
	known, sub = map[string]struct{}{}, map[string]map[string]struct{}{}
	t := reflect.TypeFor[Rule]()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlKey(f)
		if name == "" {
			continue
		}
		known[name] = struct{}{}
		if f.Type.Kind() == reflect.Struct {
			sub[name] = map[string]struct{}{}
			for j := range f.Type.NumField() {
				if k := yamlKey(f.Type.Field(j)); k != "" {
					sub[name][k] = struct{}{}
				}
			}
		}
	}
	return known, sub
}

// RuleFields lists every key of a rule, nested ones as "actors.users", sorted: the one schema of the
// policy file, the admin API and the CLI (tests hold each of them to it).
func RuleFields() []string {
	known, sub := ruleKeys()
	var out []string
	for k := range known {
		if nested, ok := sub[k]; ok {
			for n := range nested {
				out = append(out, k+"."+n)
			}
			continue
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// yamlKey is a field's key in the policy file, or "" for a field that is not part of it.
func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}
