package exchange

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/signet-id/signet/internal/store"
)

// Names is where the roles and principals a rule names are looked up (the store).
type Names interface {
	GetRole(ctx context.Context, name string) (*store.Role, error)
	GetUser(ctx context.Context, id string) (*store.User, error)
	GetUserByUsername(ctx context.Context, username string) (*store.User, error)
	GetServiceAccount(ctx context.Context, id string) (*store.ServiceAccount, error)
	GetServiceAccountByName(ctx context.Context, name string) (*store.ServiceAccount, error)
	GetClient(ctx context.Context, id string) (*store.Client, error)
}

// CheckNames refuses a rule that names a role, user, service account or client that does not
// exist: a misspelt name would otherwise make a rule that silently matches nobody (or an exclusion
// that silently excludes nobody). Every unknown name is listed with the command that shows the
// known ones. The CLI, the admin API and the policy file all come through Policy, which calls it.
func CheckNames(ctx context.Context, names Names, r *Rule) error {
	var problems []string
	check := func(field, what, list string, values []string, exists func(string) (bool, error)) error {
		for _, v := range values {
			if v == "*" && field == "subjects.users" {
				continue
			}
			ok, err := exists(v)
			if err != nil {
				return err
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: no %s %q (see `%s`)", field, what, v, list))
			}
		}
		return nil
	}
	found := func(err error) (bool, error) {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	role := func(v string) (bool, error) { _, err := names.GetRole(ctx, v); return found(err) }
	user := func(v string) (bool, error) {
		_, err := names.GetUser(ctx, v)
		if errors.Is(err, store.ErrNotFound) {
			_, err = names.GetUserByUsername(ctx, v)
		}
		return found(err)
	}
	account := func(v string) (bool, error) {
		_, err := names.GetServiceAccount(ctx, v)
		if errors.Is(err, store.ErrNotFound) {
			_, err = names.GetServiceAccountByName(ctx, v)
		}
		return found(err)
	}
	client := func(v string) (bool, error) { _, err := names.GetClient(ctx, v); return found(err) }
	// A requesting client, and the client a token was issued to, may also be a service account
	// (it authenticates at the token endpoint like a client): by ID, as the endpoint knows it.
	requester := func(v string) (bool, error) {
		if ok, err := client(v); ok || err != nil {
			return ok, err
		}
		if _, err := names.GetServiceAccount(ctx, v); !errors.Is(err, store.ErrNotFound) {
			return err == nil, err
		}
		if sa, err := names.GetServiceAccountByName(ctx, v); err == nil {
			problems = append(problems, fmt.Sprintf("service account %q requests by its ID: write %s", v, sa.ID))
			return true, nil
		}
		return false, nil
	}
	const (
		roles, users, accounts, clients = "signet role list", "signet user list", "signet serviceaccount list", "signet client list"
	)
	for _, c := range []struct {
		field, what, list string
		values            []string
		exists            func(string) (bool, error)
	}{
		{"actors.users", "user with ID or username", users, r.Actors.Users, user},
		{"actors.roles", "role", roles, r.Actors.Roles, role},
		{"actors.service_accounts", "service account with ID or name", accounts, r.Actors.ServiceAccounts, account},
		{"actors.clients", "client with ID", clients, r.Actors.Clients, client},
		{"subjects.users", "user with ID or username", users, r.Subjects.Users, user},
		{"subjects.roles", "role", roles, r.Subjects.Roles, role},
		{"subjects.exclude_users", "user with ID or username", users, r.Subjects.ExcludeUsers, user},
		{"subjects.exclude_roles", "role", roles, r.Subjects.ExcludeRoles, role},
		{"clients", "client or service account with ID", clients, r.Clients, requester},
		{"actor_token_clients", "client or service account with ID", clients, r.ActorTokenClients, requester},
	} {
		if err := check(c.field, c.what, c.list, c.values, c.exists); err != nil {
			return fmt.Errorf("rule %q: looking up %s: %w", r.Name, c.field, err)
		}
	}
	if len(problems) > 0 {
		if slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "no role") }) {
			problems = append(problems, "create a role with `signet role create NAME --description …`")
		}
		return &InvalidRule{Reason: fmt.Sprintf("rule %q names what does not exist: %s", r.Name, strings.Join(problems, "; "))}
	}
	return nil
}

// InvalidRule is a rule refused for its content (a mistake in it, or a name that does not exist):
// the caller's to fix, never a server fault.
type InvalidRule struct{ Reason string }

func (e *InvalidRule) Error() string { return e.Reason }

// NamesRole reports whether the rule names the role anywhere (actors, subjects or exclusions): such
// a role cannot be deleted while the rule exists.
func (r *Rule) NamesRole(role string) bool {
	return slices.Contains(r.Actors.Roles, role) || slices.Contains(r.Subjects.Roles, role) || slices.Contains(r.Subjects.ExcludeRoles, role)
}
