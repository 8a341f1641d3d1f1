package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-id/signet/internal/store"
)

// RuleStore is the part of the store that holds rules.
type RuleStore interface {
	ListExchangeRules(ctx context.Context) ([]store.ExchangeRule, error)
	PutExchangeRule(ctx context.Context, r *store.ExchangeRule) error
	DeleteExchangeRule(ctx context.Context, name string) error
}

// Policy is the rule set in force: the store's rules plus an optional policy file's. It is reloaded
// when the change feed reports a rule change, or (the file) on SIGHUP.
type Policy struct {
	st   RuleStore
	file string

	mu       sync.RWMutex
	stored   []Rule
	fromFile []Rule
	merged   []Rule // stored + file, sorted by name; read-only once built
	storeOK  bool
}

// merge rebuilds the sorted rule list; callers hold p.mu for writing.
func (p *Policy) merge() {
	all := append(slices.Clone(p.stored), p.fromFile...)
	slices.SortStableFunc(all, func(a, b Rule) int { return strings.Compare(a.Name, b.Name) })
	p.merged = all
}

// NewPolicy returns the policy over st, with rules also read from file when it is not empty.
func NewPolicy(st RuleStore, file string) *Policy { return &Policy{st: st, file: file} }

// Load reads the store's rules and the policy file.
func (p *Policy) Load(ctx context.Context) error {
	if err := p.loadStore(ctx); err != nil {
		return err
	}
	return p.LoadFile()
}

func (p *Policy) loadStore(ctx context.Context) error {
	list, err := p.st.ListExchangeRules(ctx)
	if err != nil {
		return fmt.Errorf("exchange rules: %w", err)
	}
	rules := make([]Rule, 0, len(list))
	for _, sr := range list {
		var r Rule
		if err := json.Unmarshal(sr.Body, &r); err != nil {
			return fmt.Errorf("stored exchange rule %q: %w", sr.Name, err)
		}
		r.Source = "store"
		rules = append(rules, r)
	}
	p.mu.Lock()
	p.stored, p.storeOK = rules, true
	p.merge()
	p.mu.Unlock()
	return nil
}

// LoadFile (re)reads the policy file; on error the previous file rules stay in force.
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
	p.mu.Lock()
	p.fromFile = rules
	p.merge()
	p.mu.Unlock()
	return nil
}

// Invalidate reacts to the change feed.
func (p *Policy) Invalidate(c store.Change) {
	if c.Kind == store.ChangeExchangeRule {
		p.mu.Lock()
		p.storeOK = false
		p.mu.Unlock()
	}
}

// Rules returns every rule in force, sorted by name (file rules after stored ones of the same
// name). The slice is shared: callers must not modify it.
func (p *Policy) Rules(ctx context.Context) ([]Rule, error) {
	p.mu.RLock()
	ok, rules := p.storeOK, p.merged
	p.mu.RUnlock()
	if ok {
		return rules, nil
	}
	if err := p.loadStore(ctx); err != nil {
		return nil, err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.merged, nil
}

// Fresh re-reads the stored rules and returns every rule in force. The token endpoint calls it
// before refusing for want of a rule, so a rule added a moment ago by another process (the CLI)
// applies at once rather than at the next change-feed poll.
func (p *Policy) Fresh(ctx context.Context) ([]Rule, error) {
	if err := p.loadStore(ctx); err != nil {
		return nil, err
	}
	return p.Rules(ctx)
}

// Put validates and stores a rule.
func (p *Policy) Put(ctx context.Context, r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if p.fileHas(r.Name) {
		return fmt.Errorf("rule %q is defined in the policy file %s; change it there", r.Name, p.file)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := p.st.PutExchangeRule(ctx, &store.ExchangeRule{Name: r.Name, Body: body, UpdatedAt: time.Now()}); err != nil {
		return err
	}
	return p.loadStore(ctx)
}

// Remove deletes a stored rule.
func (p *Policy) Remove(ctx context.Context, name string) error {
	if p.fileHas(name) {
		return fmt.Errorf("rule %q is defined in the policy file %s; remove it there", name, p.file)
	}
	if err := p.st.DeleteExchangeRule(ctx, name); err != nil {
		return err
	}
	return p.loadStore(ctx)
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

// strictKeys refuses unknown keys in a rule (a typo must not silently widen or narrow a rule).
func strictKeys(n *yaml.Node) error {
	known := map[string]bool{"name": true, "mode": true, "actors": true, "subjects": true, "clients": true, "audiences": true, "scopes": true,
		"max_ttl": true, "require_reason": true, "allow_refresh": true, "notify_subject": true, "disabled": true}
	sub := map[string]map[string]bool{
		"actors":   {"users": true, "roles": true, "service_accounts": true, "clients": true},
		"subjects": {"users": true, "roles": true, "exclude_users": true, "exclude_roles": true},
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !known[k.Value] {
			return fmt.Errorf("line %d: unknown key %q", k.Line, k.Value)
		}
		if allowed, ok := sub[k.Value]; ok {
			for j := 0; j+1 < len(v.Content); j += 2 {
				if !allowed[v.Content[j].Value] {
					return fmt.Errorf("line %d: unknown key %q in %s", v.Content[j].Line, v.Content[j].Value, k.Value)
				}
			}
		}
	}
	return nil
}
