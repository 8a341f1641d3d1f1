// Package manage is where people change Signet's data: the checks, the audit event and the change
// itself, in that order, for the CLI and the admin API alike, so both refuse the same mistakes with
// the same words. It owns roles that operators define; it speaks no HTTP and prints nothing.
package manage

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
)

// Refused is a change refused for what was asked (a caller's mistake, never a server fault).
// Conflict is set when the request is well formed but the data as it stands forbids it.
type Refused struct {
	Reason   string
	Conflict bool
}

func (e *Refused) Error() string { return e.Reason }

// Permissions are the permissions Signet itself enforces; a role may hold only these (a misspelt
// permission would otherwise grant nothing, silently). A role used only to match exchange rules
// (customer, vip) needs none.
var Permissions = []string{directory.PermAdmin, directory.PermIntrospect, directory.PermIntrospectAny}

var roleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// Roles creates and deletes the roles operators define.
type Roles struct {
	Store  store.Store
	Policy *exchange.Policy // rules in force: a role a rule names cannot be deleted
	Audit  *audit.Log
}

// Create adds a role. actor names who asked, for the audit log.
func (m *Roles) Create(ctx context.Context, actor string, r store.Role) (*store.Role, error) {
	if !roleName.MatchString(r.Name) {
		return nil, &Refused{Reason: fmt.Sprintf("role name %q: use 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", r.Name)}
	}
	perms := []string{}
	for _, p := range r.Permissions {
		if !slices.Contains(Permissions, p) {
			return nil, &Refused{Reason: fmt.Sprintf("permission %q: Signet knows %s; a role used only by exchange rules needs none", p, strings.Join(Permissions, ", "))}
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	r.Permissions, r.BuiltIn = perms, false
	if _, err := m.Store.GetRole(ctx, r.Name); err == nil {
		return nil, &Refused{Reason: fmt.Sprintf("role %q already exists (see `signet role list`)", r.Name), Conflict: true}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := m.record(ctx, actor, r.Name, map[string]any{"action": "created", "role": r.Name, "description": r.Description, "permissions": r.Permissions, "require_mfa": r.RequireMFA}); err != nil {
		return nil, err
	}
	if err := m.Store.CreateRole(ctx, &r); errors.Is(err, store.ErrConflict) {
		return nil, &Refused{Reason: fmt.Sprintf("role %q already exists (see `signet role list`)", r.Name), Conflict: true}
	} else if err != nil {
		return nil, err
	}
	return &r, nil
}

// RoleChange is what Update changes in a role; nil fields stay as they are.
type RoleChange struct {
	Description *string
	RequireMFA  *bool
}

// Update changes a role's description or whether its holders need a second factor to sign in
// (built-in roles too: an operator may require one of every admin).
func (m *Roles) Update(ctx context.Context, actor, name string, change RoleChange) (*store.Role, error) {
	r, err := m.Store.GetRole(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Refused{Reason: fmt.Sprintf("no role %q (see `signet role list`)", name)}
	} else if err != nil {
		return nil, err
	}
	details := map[string]any{"action": "updated", "role": name}
	if change.Description != nil {
		r.Description, details["description"] = *change.Description, *change.Description
	}
	if change.RequireMFA != nil {
		r.RequireMFA, details["require_mfa"] = *change.RequireMFA, *change.RequireMFA
	}
	if err := m.record(ctx, actor, name, details); err != nil {
		return nil, err
	}
	if err := m.Store.PutRole(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Delete removes a role, refusing a built-in role, a role still granted (naming who holds it) and
// a role an exchange rule names (naming the rules).
func (m *Roles) Delete(ctx context.Context, actor, name string) error {
	r, err := m.Store.GetRole(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return &Refused{Reason: fmt.Sprintf("no role %q (see `signet role list`)", name)}
	} else if err != nil {
		return err
	}
	if r.BuiltIn {
		return &Refused{Reason: fmt.Sprintf("role %q is built in and cannot be deleted", name), Conflict: true}
	}
	holders, err := m.holders(ctx, name)
	if err != nil {
		return err
	}
	if len(holders) > 0 {
		return &Refused{Reason: fmt.Sprintf("role %q is still granted to %s; revoke it first (`signet role revoke %s --user …`)", name, strings.Join(holders, ", "), name), Conflict: true}
	}
	rules, err := m.Policy.Rules(ctx)
	if err != nil {
		return err
	}
	var naming []string
	for _, rule := range rules {
		if rule.NamesRole(name) {
			naming = append(naming, fmt.Sprintf("%q (%s)", rule.Name, rule.Source))
		}
	}
	if len(naming) > 0 {
		return &Refused{Reason: fmt.Sprintf("role %q is named by exchange rule %s; change or remove the rule first", name, strings.Join(naming, ", ")), Conflict: true}
	}
	if err := m.record(ctx, actor, name, map[string]any{"action": "deleted", "role": name}); err != nil {
		return err
	}
	if err := m.Store.DeleteRole(ctx, name); errors.Is(err, store.ErrConflict) {
		// Granted between the check and the delete: the store refuses and says to whom.
		return &Refused{Reason: err.Error(), Conflict: true}
	} else if err != nil {
		return err
	}
	return nil
}

// holders names every user, service account and client holding the role.
func (m *Roles) holders(ctx context.Context, role string) ([]string, error) {
	var out []string
	users, err := m.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if slices.Contains(u.Roles, role) {
			out = append(out, "user "+u.Username)
		}
	}
	accounts, err := m.Store.ListServiceAccounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range accounts {
		if slices.Contains(a.Roles, role) {
			out = append(out, "service account "+a.Name)
		}
	}
	clients, err := m.Store.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range clients {
		if slices.Contains(c.Roles, role) {
			out = append(out, "client "+c.ID)
		}
	}
	return out, nil
}

// record audits a change before it is made: if the event cannot be written, the change is not made.
func (m *Roles) record(ctx context.Context, actor, role string, details map[string]any) error {
	if err := m.Audit.Record(ctx, audit.Event{Type: audit.TypeRoleChanged, Actor: actor, Subject: role, Details: details}); err != nil {
		return fmt.Errorf("the change was not made: %w", err)
	}
	return nil
}
