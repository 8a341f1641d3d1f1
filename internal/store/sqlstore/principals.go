package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// --- roles and grants ---------------------------------------------------------------------------

// grants returns role names per principal ID for the given kind (all principals when ids is nil).
func (s *Store) grants(ctx context.Context, kind store.PrincipalKind, id string) (map[string][]string, error) {
	query, args := `SELECT principal_id, role FROM role_grants WHERE principal_kind = ?`, []any{string(kind)}
	if id != "" {
		query += ` AND principal_id = ?`
		args = append(args, id)
	}
	rows, err := s.R.QueryContext(ctx, s.q(query+` ORDER BY role`), args...)
	if err != nil {
		return nil, fmt.Errorf("role grants: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var pid, role string
		if err := rows.Scan(&pid, &role); err != nil {
			return nil, err
		}
		out[pid] = append(out[pid], role)
	}
	return out, rows.Err()
}

// insertGrants grants roles inside a transaction, refusing unknown roles.
func (t *txn) insertGrants(kind store.PrincipalKind, id string, roles []string) error {
	for _, r := range roles {
		var n int
		if err := t.tx.QueryRowContext(t.ctx, t.s.q(`SELECT COUNT(*) FROM roles WHERE name = ?`), r).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("role %q: %w", r, store.ErrNotFound)
		}
		if _, err := t.exec(`INSERT INTO role_grants (principal_kind, principal_id, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, string(kind), id, r); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) ListRoles(ctx context.Context) ([]store.Role, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+roleCols+` FROM roles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	defer rows.Close()
	var out []store.Role
	for rows.Next() {
		r, err := scanRole(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

const roleCols = `name, description, permissions, built_in, require_mfa`

func scanRole(sc scanner) (*store.Role, error) {
	var r store.Role
	var perms string
	if err := sc.Scan(&r.Name, &r.Description, &perms, &r.BuiltIn, &r.RequireMFA); err != nil {
		return nil, err
	}
	var err error
	r.Permissions, err = fromList(perms)
	return &r, err
}

func (s *Store) GetRole(ctx context.Context, name string) (*store.Role, error) {
	r, err := scanRole(s.R.QueryRowContext(ctx, s.q(`SELECT `+roleCols+` FROM roles WHERE name = ?`), name))
	return r, s.mapErr(err, "role "+name)
}

func (s *Store) PutRole(ctx context.Context, r *store.Role) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO roles (`+roleCols+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET description = excluded.description, permissions = excluded.permissions, built_in = excluded.built_in,
				require_mfa = excluded.require_mfa`,
			r.Name, r.Description, list(r.Permissions), r.BuiltIn, r.RequireMFA); err != nil {
			return err
		}
		return t.change(store.ChangeRole, r.Name)
	}), "role "+r.Name)
}

// principalExists checks the principal a grant names.
func (t *txn) principalExists(kind store.PrincipalKind, id string) error {
	table := map[store.PrincipalKind]string{store.KindUser: "users", store.KindServiceAccount: "service_accounts", store.KindClient: "clients"}[kind]
	if table == "" {
		return fmt.Errorf("principal kind %q: %w", kind, store.ErrNotFound)
	}
	var n int
	if err := t.tx.QueryRowContext(t.ctx, t.s.q(`SELECT COUNT(*) FROM `+table+` WHERE id = ?`), id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) GrantRole(ctx context.Context, kind store.PrincipalKind, id, role string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if err := t.principalExists(kind, id); err != nil {
			return err
		}
		if err := t.insertGrants(kind, id, []string{role}); err != nil {
			return err
		}
		return t.change(store.ChangeRole, string(kind)+":"+id)
	}), "grant role")
}

func (s *Store) RevokeRole(ctx context.Context, kind store.PrincipalKind, id, role string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		res, err := t.exec(`DELETE FROM role_grants WHERE principal_kind = ? AND principal_id = ? AND role = ?`, string(kind), id, role)
		if err := mustAffect(res, err, "role grant"); err != nil {
			return err
		}
		return t.change(store.ChangeRole, string(kind)+":"+id)
	}), "revoke role")
}

// deletePrincipal removes a principal with its grants and keys.
func (t *txn) deletePrincipal(kind store.PrincipalKind, table, id, changeKind string) error {
	res, err := t.exec(`DELETE FROM `+table+` WHERE id = ?`, id)
	if err := mustAffect(res, err, string(kind)+" "+id); err != nil {
		return err
	}
	if _, err := t.exec(`DELETE FROM role_grants WHERE principal_kind = ? AND principal_id = ?`, string(kind), id); err != nil {
		return err
	}
	rows, err := t.tx.QueryContext(t.ctx, t.s.q(`SELECT id FROM public_keys WHERE owner_kind = ? AND owner_id = ?`), string(kind), id)
	if err != nil {
		return err
	}
	var kids []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		kids = append(kids, k)
	}
	rows.Close()
	if _, err := t.exec(`DELETE FROM public_keys WHERE owner_kind = ? AND owner_id = ?`, string(kind), id); err != nil {
		return err
	}
	for _, k := range kids {
		if err := t.change(store.ChangePublicKey, k); err != nil {
			return err
		}
	}
	return t.change(changeKind, id)
}

// --- users --------------------------------------------------------------------------------------

const userCols = `id, username, email, display_name, password_hash, locked, password_change_required, mfa_required, created_at, updated_at`

func scanUser(sc scanner) (*store.User, error) {
	var u store.User
	var email sql.NullString
	var created, updated int64
	if err := sc.Scan(&u.ID, &u.Username, &email, &u.DisplayName, &u.PasswordHash, &u.Locked, &u.PasswordChangeRequired, &u.MFARequired, &created, &updated); err != nil {
		return nil, err
	}
	u.Email, u.CreatedAt, u.UpdatedAt = email.String, fromTS(created), fromTS(updated)
	return &u, nil
}

// placeholders returns n comma-separated "?".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Username, nullable(u.Email), u.DisplayName, u.PasswordHash, u.Locked, u.PasswordChangeRequired, u.MFARequired,
			ts(u.CreatedAt), ts(u.UpdatedAt)); err != nil {
			return err
		}
		if err := t.insertGrants(store.KindUser, u.ID, u.Roles); err != nil {
			return err
		}
		return t.change(store.ChangeUser, u.ID)
	}), "create user "+u.Username)
}

func (s *Store) getUser(ctx context.Context, where string, arg any) (*store.User, error) {
	u, err := scanUser(s.R.QueryRowContext(ctx, s.q(`SELECT `+userCols+` FROM users WHERE `+where+` = ?`), arg))
	if err != nil {
		return nil, s.mapErr(err, fmt.Sprintf("user %v", arg))
	}
	g, err := s.grants(ctx, store.KindUser, u.ID)
	u.Roles = g[u.ID]
	return u, err
}

func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	return s.getUser(ctx, "id", id)
}

func (s *Store) GetUserByUsername(ctx context.Context, username string) (*store.User, error) {
	return s.getUser(ctx, "username", username)
}

func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	g, err := s.grants(ctx, store.KindUser, "")
	for i := range out {
		out[i].Roles = g[out[i].ID]
	}
	return out, err
}

func (s *Store) UpdateUser(ctx context.Context, u *store.User) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE users SET username = ?, email = ?, display_name = ?, password_hash = ?, locked = ?,
			password_change_required = ?, mfa_required = ?, updated_at = ? WHERE id = ?`,
			u.Username, nullable(u.Email), u.DisplayName, u.PasswordHash, u.Locked, u.PasswordChangeRequired, u.MFARequired, ts(u.UpdatedAt), u.ID)
		if err := mustAffect(res, err, "user "+u.ID); err != nil {
			return err
		}
		return t.change(store.ChangeUser, u.ID)
	}), "update user "+u.ID)
}

// DeleteUser removes the user and everything kept for them alone; their browser sessions stay as
// history, ended.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	now := ts(time.Now())
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if err := t.deletePrincipal(store.KindUser, "users", id, store.ChangeUser); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM consents WHERE user_id = ?`, `DELETE FROM totp_factors WHERE user_id = ?`,
			`DELETE FROM recovery_codes WHERE user_id = ?`} {
			if _, err := t.exec(q, id); err != nil {
				return err
			}
		}
		if _, err := t.exec(`DELETE FROM signin_failures WHERE key = ?`, "user:"+id); err != nil {
			return err
		}
		_, err := t.exec(`UPDATE browser_sessions SET ended_at = ?, ended_by = 'deleted' WHERE user_id = ? AND ended_at = 0`, now, id)
		return err
	}), "delete user "+id)
}

// --- service accounts ---------------------------------------------------------------------------

const accountCols = `id, name, description, grant_types, secret_salt, secret_hash, disabled, created_at, updated_at`

func scanAccount(sc scanner) (*store.ServiceAccount, error) {
	var a store.ServiceAccount
	var grants string
	var created, updated int64
	if err := sc.Scan(&a.ID, &a.Name, &a.Description, &grants, &a.SecretSalt, &a.SecretHash, &a.Disabled, &created, &updated); err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt = fromTS(created), fromTS(updated)
	var err error
	a.GrantTypes, err = fromList(grants)
	return &a, err
}

func (s *Store) CreateServiceAccount(ctx context.Context, a *store.ServiceAccount) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO service_accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.Name, a.Description, list(a.GrantTypes), bytesOrNil(a.SecretSalt), bytesOrNil(a.SecretHash), a.Disabled, ts(a.CreatedAt), ts(a.UpdatedAt)); err != nil {
			return err
		}
		if err := t.insertGrants(store.KindServiceAccount, a.ID, a.Roles); err != nil {
			return err
		}
		return t.change(store.ChangeServiceAccount, a.ID)
	}), "create service account "+a.Name)
}

func (s *Store) getAccount(ctx context.Context, where string, arg string) (*store.ServiceAccount, error) {
	a, err := scanAccount(s.R.QueryRowContext(ctx, s.q(`SELECT `+accountCols+` FROM service_accounts WHERE `+where+` = ?`), arg))
	if err != nil {
		return nil, s.mapErr(err, "service account "+arg)
	}
	g, err := s.grants(ctx, store.KindServiceAccount, a.ID)
	a.Roles = g[a.ID]
	return a, err
}

func (s *Store) GetServiceAccount(ctx context.Context, id string) (*store.ServiceAccount, error) {
	return s.getAccount(ctx, "id", id)
}

func (s *Store) GetServiceAccountByName(ctx context.Context, name string) (*store.ServiceAccount, error) {
	return s.getAccount(ctx, "name", name)
}

func (s *Store) ListServiceAccounts(ctx context.Context) ([]store.ServiceAccount, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+accountCols+` FROM service_accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("service accounts: %w", err)
	}
	defer rows.Close()
	var out []store.ServiceAccount
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	g, err := s.grants(ctx, store.KindServiceAccount, "")
	for i := range out {
		out[i].Roles = g[out[i].ID]
	}
	return out, err
}

func (s *Store) UpdateServiceAccount(ctx context.Context, a *store.ServiceAccount) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE service_accounts SET name = ?, description = ?, grant_types = ?, secret_salt = ?, secret_hash = ?, disabled = ?, updated_at = ? WHERE id = ?`,
			a.Name, a.Description, list(a.GrantTypes), bytesOrNil(a.SecretSalt), bytesOrNil(a.SecretHash), a.Disabled, ts(a.UpdatedAt), a.ID)
		if err := mustAffect(res, err, "service account "+a.ID); err != nil {
			return err
		}
		return t.change(store.ChangeServiceAccount, a.ID)
	}), "update service account "+a.ID)
}

func (s *Store) DeleteServiceAccount(ctx context.Context, id string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		return t.deletePrincipal(store.KindServiceAccount, "service_accounts", id, store.ChangeServiceAccount)
	}), "delete service account "+id)
}

// --- clients ------------------------------------------------------------------------------------

// clientSettings are the columns UpdateClient sets, in clientArgs' order.
var clientSettings = []string{"name", "type", "auth_method", "secret_salt", "secret_hash", "redirect_uris", "grant_types", "scopes", "audiences",
	"access_token_format", "access_token_alg", "access_token_ttl", "refresh_token_ttl", "disabled",
	"third_party", "post_logout_redirect_uris", "backchannel_logout_uri", "require_mfa"}

var clientCols = "id, " + strings.Join(clientSettings, ", ") + ", created_at, updated_at"

func scanClient(sc scanner) (*store.Client, error) {
	var c store.Client
	var redirects, grants, scopes, auds, logoutRedirects string
	var attl, rttl, created, updated int64
	if err := sc.Scan(&c.ID, &c.Name, &c.Type, &c.AuthMethod, &c.SecretSalt, &c.SecretHash, &redirects, &grants, &scopes, &auds,
		&c.AccessTokenFormat, &c.AccessTokenAlg, &attl, &rttl, &c.Disabled,
		&c.ThirdParty, &logoutRedirects, &c.BackchannelLogoutURI, &c.RequireMFA, &created, &updated); err != nil {
		return nil, err
	}
	var errs [5]error
	c.RedirectURIs, errs[0] = fromList(redirects)
	c.GrantTypes, errs[1] = fromList(grants)
	c.Scopes, errs[2] = fromList(scopes)
	c.Audiences, errs[3] = fromList(auds)
	c.PostLogoutRedirectURIs, errs[4] = fromList(logoutRedirects)
	c.AccessTokenTTL, c.RefreshTokenTTL = msDuration(attl), msDuration(rttl)
	c.CreatedAt, c.UpdatedAt = fromTS(created), fromTS(updated)
	return &c, errors.Join(errs[:]...)
}

func clientArgs(c *store.Client) []any {
	return []any{c.Name, c.Type, c.AuthMethod, bytesOrNil(c.SecretSalt), bytesOrNil(c.SecretHash), list(c.RedirectURIs), list(c.GrantTypes),
		list(c.Scopes), list(c.Audiences), c.AccessTokenFormat, c.AccessTokenAlg, c.AccessTokenTTL.Milliseconds(),
		c.RefreshTokenTTL.Milliseconds(), c.Disabled, c.ThirdParty, list(c.PostLogoutRedirectURIs), c.BackchannelLogoutURI, c.RequireMFA}
}

func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		args := append([]any{c.ID}, clientArgs(c)...)
		args = append(args, ts(c.CreatedAt), ts(c.UpdatedAt))
		if _, err := t.exec(`INSERT INTO clients (`+clientCols+`) VALUES (`+placeholders(len(args))+`)`, args...); err != nil {
			return err
		}
		if err := t.insertGrants(store.KindClient, c.ID, c.Roles); err != nil {
			return err
		}
		return t.change(store.ChangeClient, c.ID)
	}), "create client "+c.ID)
}

func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := scanClient(s.R.QueryRowContext(ctx, s.q(`SELECT `+clientCols+` FROM clients WHERE id = ?`), id))
	if err != nil {
		return nil, s.mapErr(err, "client "+id)
	}
	g, err := s.grants(ctx, store.KindClient, id)
	c.Roles = g[id]
	return c, err
}

func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+clientCols+` FROM clients ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	g, err := s.grants(ctx, store.KindClient, "")
	for i := range out {
		out[i].Roles = g[out[i].ID]
	}
	return out, err
}

func (s *Store) UpdateClient(ctx context.Context, c *store.Client) error {
	set := make([]string, len(clientSettings))
	for i, col := range clientSettings {
		set[i] = col + " = ?"
	}
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		args := append(clientArgs(c), ts(c.UpdatedAt), c.ID)
		res, err := t.exec(`UPDATE clients SET `+strings.Join(set, ", ")+`, updated_at = ? WHERE id = ?`, args...)
		if err := mustAffect(res, err, "client "+c.ID); err != nil {
			return err
		}
		return t.change(store.ChangeClient, c.ID)
	}), "update client "+c.ID)
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		return t.deletePrincipal(store.KindClient, "clients", id, store.ChangeClient)
	}), "delete client "+id)
}

// --- user-defined roles -------------------------------------------------------------------------

func (s *Store) CreateRole(ctx context.Context, r *store.Role) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO roles (`+roleCols+`) VALUES (?, ?, ?, ?, ?)`,
			r.Name, r.Description, list(r.Permissions), r.BuiltIn, r.RequireMFA); err != nil {
			return err
		}
		return t.change(store.ChangeRole, r.Name)
	}), "role "+r.Name)
}

func (s *Store) DeleteRole(ctx context.Context, name string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		var builtIn bool
		if err := t.tx.QueryRowContext(t.ctx, t.s.q(`SELECT built_in FROM roles WHERE name = ?`), name).Scan(&builtIn); err != nil {
			return err
		}
		if builtIn {
			return fmt.Errorf("role %q is built in and cannot be deleted: %w", name, store.ErrConflict)
		}
		rows, err := t.tx.QueryContext(t.ctx, t.s.q(`SELECT principal_kind, principal_id FROM role_grants WHERE role = ? ORDER BY principal_kind, principal_id`), name)
		if err != nil {
			return err
		}
		var holders []string
		for rows.Next() {
			var kind, id string
			if err := rows.Scan(&kind, &id); err != nil {
				rows.Close()
				return err
			}
			holders = append(holders, kind+" "+id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(holders) > 0 {
			return fmt.Errorf("role %q is still granted to %s; revoke it first: %w", name, strings.Join(holders, ", "), store.ErrConflict)
		}
		if _, err := t.exec(`DELETE FROM roles WHERE name = ?`, name); err != nil {
			return err
		}
		return t.change(store.ChangeRole, name)
	}), "delete role "+name)
}
