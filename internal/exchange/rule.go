// Package exchange owns token-exchange policy (RFC 8693): the rules that say who may act as or for
// whom, and Decide, a pure function that turns a request and the rules into a decision with the
// scope, audience and lifetime to grant, or a refusal that says which rule would be needed. It
// performs no I/O; the token endpoint gathers the facts and issues the token.
package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/tokens"
)

// Modes.
const (
	ModeDelegation    = "delegation"
	ModeImpersonation = "impersonation"
	ModeDownscope     = "downscope" // no rule needed; never stored in a rule
)

// Lifetime bounds of exchanged tokens.
const (
	DefaultImpersonationTTL = 15 * time.Minute
	DefaultDelegationTTL    = time.Hour
	MaxTTL                  = time.Hour

	// A refresh token (allow_refresh) keeps an exchange session going past its first token, up to
	// the rule's refresh_ttl: 1h for impersonation and 8h for delegation unless set, never above 24h.
	DefaultImpersonationRefreshTTL = time.Hour
	DefaultDelegationRefreshTTL    = 8 * time.Hour
	MaxRefreshTTL                  = tokens.MaxSessionLife

	// MaxActorMFAWindow bounds require_actor_mfa: a second factor older than a day proves nothing
	// a sign-in's own lifetime does not.
	MaxActorMFAWindow = 24 * time.Hour
)

// Selector names principals by ID or name, and by role.
type Selector struct {
	Users           []string `json:"users,omitempty" yaml:"users,omitempty"`
	Roles           []string `json:"roles,omitempty" yaml:"roles,omitempty"`
	ServiceAccounts []string `json:"service_accounts,omitempty" yaml:"service_accounts,omitempty"`
	Clients         []string `json:"clients,omitempty" yaml:"clients,omitempty"`
}

func (s Selector) empty() bool {
	return len(s.Users) == 0 && len(s.Roles) == 0 && len(s.ServiceAccounts) == 0 && len(s.Clients) == 0
}

// Subjects selects whose tokens may be obtained: users by ID or name, roles, or everyone ("*"),
// minus exclusions.
type Subjects struct {
	Users        []string `json:"users,omitempty" yaml:"users,omitempty"` // "*" matches every user
	Roles        []string `json:"roles,omitempty" yaml:"roles,omitempty"`
	ExcludeUsers []string `json:"exclude_users,omitempty" yaml:"exclude_users,omitempty"`
	ExcludeRoles []string `json:"exclude_roles,omitempty" yaml:"exclude_roles,omitempty"`
}

// Rule allows one kind of exchange.
type Rule struct {
	Name     string   `json:"name" yaml:"name"`
	Mode     string   `json:"mode" yaml:"mode"`
	Actors   Selector `json:"actors" yaml:"actors"`
	Subjects Subjects `json:"subjects" yaml:"subjects"`
	Clients  []string `json:"clients,omitempty" yaml:"clients,omitempty"` // requesting clients; empty: any confidential client
	// ActorTokenClients lists clients whose actor tokens a confidential requester may present besides
	// its own (e.g. a backend acting for staff who signed in at the admin SPA). Empty, the default:
	// the actor token must have been issued to the requesting client.
	ActorTokenClients []string `json:"actor_token_clients,omitempty" yaml:"actor_token_clients,omitempty"`
	Audiences         []string `json:"audiences" yaml:"audiences"`                 // audiences the new token may have
	Scopes            []string `json:"scopes,omitempty" yaml:"scopes,omitempty"`   // scope ceiling; empty: no scope at all
	MaxTTL            Duration `json:"max_ttl,omitempty" yaml:"max_ttl,omitempty"` // 0: 15m (impersonation) or 1h (delegation)
	RequireReason     bool     `json:"require_reason,omitempty" yaml:"require_reason,omitempty"`
	AllowRefresh      bool     `json:"allow_refresh,omitempty" yaml:"allow_refresh,omitempty"`
	RefreshTTL        Duration `json:"refresh_ttl,omitempty" yaml:"refresh_ttl,omitempty"` // session lifetime with refresh; 0: 1h (impersonation) or 8h (delegation)
	NotifySubject     bool     `json:"notify_subject,omitempty" yaml:"notify_subject,omitempty"`
	// RequireActorMFA, when set, is a freshness window: the actor token must come from a sign-in
	// (its sid) of the actor that is still active and passed a second factor at most this long ago.
	RequireActorMFA Duration `json:"require_actor_mfa,omitempty" yaml:"require_actor_mfa,omitempty"`
	Disabled        bool     `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// Source says where the rule lives: "store" or the policy file's path (not persisted).
	Source string `json:"-" yaml:"-"`
}

// Duration is a time.Duration written as "15m" in JSON and YAML.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration must be a string such as "15m"`)
	}
	return d.parse(s)
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return errors.New(`a duration must be written such as 15m`)
	}
	return d.parse(s)
}

func (d *Duration) parse(s string) error {
	if s == "" {
		*d = 0 // absent and empty mean the same: the default
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// TTL is the rule's lifetime cap.
func (r *Rule) TTL() time.Duration {
	if r.MaxTTL > 0 {
		return min(time.Duration(r.MaxTTL), MaxTTL)
	}
	if r.Mode == ModeImpersonation {
		return DefaultImpersonationTTL
	}
	return DefaultDelegationTTL
}

// RefreshLifetime is how long a session opened by the rule may be refreshed.
func (r *Rule) RefreshLifetime() time.Duration {
	switch {
	case r.RefreshTTL > 0:
		return min(time.Duration(r.RefreshTTL), MaxRefreshTTL)
	case r.Mode == ModeImpersonation:
		return DefaultImpersonationRefreshTTL
	}
	return DefaultDelegationRefreshTTL
}

// Validate checks a rule for mistakes that would make it useless or dangerously broad.
func (r *Rule) Validate() error {
	var problems []string
	if r.Name == "" || strings.ContainsAny(r.Name, " \t\n") {
		problems = append(problems, "name is required and may not contain spaces")
	}
	if r.Mode != ModeDelegation && r.Mode != ModeImpersonation {
		problems = append(problems, fmt.Sprintf("mode %q: use delegation or impersonation", r.Mode))
	}
	if r.Actors.empty() {
		problems = append(problems, "actors: name at least one user, role, service account or client")
	}
	if len(r.Subjects.Users) == 0 && len(r.Subjects.Roles) == 0 {
		problems = append(problems, `subjects: name users, roles, or users: ["*"]`)
	}
	if len(r.Audiences) == 0 {
		problems = append(problems, "audiences: name at least one audience (an API's client ID)")
	}
	if slices.Contains(r.Audiences, "*") {
		problems = append(problems, `audiences: "*" is not allowed; list the APIs`)
	}
	if r.MaxTTL < 0 || time.Duration(r.MaxTTL) > MaxTTL {
		problems = append(problems, fmt.Sprintf("max_ttl %s: must be between 0 and %s", time.Duration(r.MaxTTL), MaxTTL))
	}
	if r.RefreshTTL < 0 || time.Duration(r.RefreshTTL) > MaxRefreshTTL {
		problems = append(problems, fmt.Sprintf("refresh_ttl %s: must be between 0 and %s", time.Duration(r.RefreshTTL), MaxRefreshTTL))
	}
	if r.RefreshTTL > 0 && !r.AllowRefresh {
		problems = append(problems, "refresh_ttl is set but allow_refresh is not: set allow_refresh: true or drop refresh_ttl")
	}
	if r.RefreshTTL > 0 && r.RefreshTTL < r.MaxTTL {
		problems = append(problems, "refresh_ttl is shorter than max_ttl: the session would end before its first token")
	}
	switch w := time.Duration(r.RequireActorMFA); {
	case w < 0 || w > MaxActorMFAWindow:
		problems = append(problems, fmt.Sprintf("require_actor_mfa %s: must be between 0 (not required) and %s", w, MaxActorMFAWindow))
	case w > 0 && r.Mode == ModeDelegation:
		problems = append(problems, "require_actor_mfa applies to impersonation only: a delegation's actor is a service account or client, which never passes a second factor")
	}
	if len(problems) > 0 {
		return &InvalidRule{Reason: fmt.Sprintf("rule %q: %s", r.Name, strings.Join(problems, "; "))}
	}
	return nil
}
