// Package directory is the read-through cache of the principals Signet authenticates on every
// request: clients, service accounts, users, their registered keys and the permissions their roles
// grant. Entries are dropped when the change feed reports their row changed. It never writes.
package directory

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/signet-id/signet/internal/store"
)

// Permissions Signet checks.
const (
	PermAdmin         = "signet:admin"
	PermIntrospect    = "signet:introspect"
	PermIntrospectAny = "introspect:any"
)

// Directory caches principals by ID. It is safe for concurrent use.
type Directory struct {
	st store.Store

	mu sync.RWMutex
	// version is bumped (under mu) on every invalidation, so a load that raced one is not cached,
	// and read without the lock by Version.
	version  atomic.Uint64
	clients  map[string]*store.Client
	accounts map[string]*store.ServiceAccount
	users    map[string]*store.User
	keys     map[string]*store.PublicKey
	roles    map[string]store.Role // by name; nil until loaded
}

// New returns an empty directory over st.
func New(st store.Store) *Directory {
	d := &Directory{st: st}
	d.reset()
	return d
}

func (d *Directory) reset() {
	d.clients = map[string]*store.Client{}
	d.accounts = map[string]*store.ServiceAccount{}
	d.users = map[string]*store.User{}
	d.keys = map[string]*store.PublicKey{}
	d.roles = nil
}

// lookup is the read-through step shared by every kind of record.
func lookup[T any](d *Directory, m func() map[string]*T, id string, load func() (*T, error)) (*T, error) {
	d.mu.RLock()
	v, ok := m()[id]
	gen := d.version.Load()
	d.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.version.Load() == gen {
		m()[id] = v
	}
	d.mu.Unlock()
	return v, nil
}

// Client returns the client with this client_id (store.ErrNotFound when there is none).
func (d *Directory) Client(ctx context.Context, id string) (*store.Client, error) {
	return lookup(d, func() map[string]*store.Client { return d.clients }, id, func() (*store.Client, error) {
		return d.st.GetClient(ctx, id)
	})
}

// ServiceAccount returns the service account with this ID.
func (d *Directory) ServiceAccount(ctx context.Context, id string) (*store.ServiceAccount, error) {
	return lookup(d, func() map[string]*store.ServiceAccount { return d.accounts }, id, func() (*store.ServiceAccount, error) {
		return d.st.GetServiceAccount(ctx, id)
	})
}

// User returns the user with this ID.
func (d *Directory) User(ctx context.Context, id string) (*store.User, error) {
	return lookup(d, func() map[string]*store.User { return d.users }, id, func() (*store.User, error) {
		return d.st.GetUser(ctx, id)
	})
}

// PublicKey returns the registered key with this key ID.
func (d *Directory) PublicKey(ctx context.Context, kid string) (*store.PublicKey, error) {
	return lookup(d, func() map[string]*store.PublicKey { return d.keys }, kid, func() (*store.PublicKey, error) {
		return d.st.GetPublicKey(ctx, kid)
	})
}

// HasPermission reports whether any of roles grants perm.
func (d *Directory) HasPermission(ctx context.Context, roles []string, perm string) (bool, error) {
	return d.anyRole(ctx, roles, func(r store.Role) bool { return slices.Contains(r.Permissions, perm) })
}

// RequiresMFA reports whether any of roles makes a second factor necessary to sign in.
func (d *Directory) RequiresMFA(ctx context.Context, roles []string) (bool, error) {
	return d.anyRole(ctx, roles, func(r store.Role) bool { return r.RequireMFA })
}

// anyRole reports whether one of the named roles satisfies f, loading the role table once.
func (d *Directory) anyRole(ctx context.Context, roles []string, f func(store.Role) bool) (bool, error) {
	if len(roles) == 0 {
		return false, nil
	}
	d.mu.RLock()
	table, gen := d.roles, d.version.Load()
	d.mu.RUnlock()
	if table == nil {
		list, err := d.st.ListRoles(ctx)
		if err != nil {
			return false, err
		}
		table = make(map[string]store.Role, len(list))
		for _, r := range list {
			table[r.Name] = r
		}
		d.mu.Lock()
		if d.version.Load() == gen {
			d.roles = table
		}
		d.mu.Unlock()
	}
	for _, name := range roles {
		if r, ok := table[name]; ok && f(r) {
			return true, nil
		}
	}
	return false, nil
}

// Invalidate drops what a change made stale. Subscribe it to the change feed.
func (d *Directory) Invalidate(c store.Change) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.version.Add(1)
	switch c.Kind {
	case store.ChangeResync:
		d.reset()
	case store.ChangeClient:
		delete(d.clients, c.Key)
	case store.ChangeServiceAccount:
		delete(d.accounts, c.Key)
	case store.ChangeUser:
		delete(d.users, c.Key)
	case store.ChangePublicKey:
		delete(d.keys, c.Key)
	case store.ChangeRole:
		// A grant change names "<kind>:<id>"; a role definition change names the role.
		if kind, id, ok := strings.Cut(c.Key, ":"); ok {
			switch store.PrincipalKind(kind) {
			case store.KindClient:
				delete(d.clients, id)
			case store.KindServiceAccount:
				delete(d.accounts, id)
			case store.KindUser:
				delete(d.users, id)
			}
			return
		}
		d.roles = nil
	}
}

// Version changes whenever an invalidation may have changed what Standing answers: a caller that
// saw every principal of a token in good standing at one version need not ask again at the same one.
func (d *Directory) Version() uint64 { return d.version.Load() }

// Standing says whether a principal may hold active tokens: "" when it may, or why not (locked,
// disabled, deleted). The token service asks it on every use of a token, so locking a user or
// disabling a client reaches its tokens on every replica within the change-feed bound.
func (d *Directory) Standing(ctx context.Context, kind store.PrincipalKind, id string) (string, error) {
	var disabled bool
	var err error
	switch kind {
	case store.KindUser:
		var u *store.User
		if u, err = d.User(ctx, id); err == nil && u.Locked {
			return "user " + u.Username + " is locked", nil
		}
	case store.KindServiceAccount:
		var sa *store.ServiceAccount
		if sa, err = d.ServiceAccount(ctx, id); err == nil {
			disabled = sa.Disabled
		}
	case store.KindClient:
		var c *store.Client
		if c, err = d.Client(ctx, id); err == nil {
			disabled = c.Disabled
		} else if errors.Is(err, store.ErrNotFound) {
			// Tokens are also issued to service accounts that authenticate at the token endpoint
			// themselves; their client_id is the account's ID.
			return d.Standing(ctx, store.KindServiceAccount, id)
		}
	default:
		return "", nil
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return string(kind) + " " + id + " no longer exists", nil
	case err != nil:
		return "", err
	case disabled:
		return string(kind) + " " + id + " is disabled", nil
	}
	return "", nil
}
