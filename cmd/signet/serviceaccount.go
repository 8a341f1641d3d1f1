package main

import (
	"errors"
	"fmt"
	"github.com/signet-id/signet/internal/audit"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

type accountView struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Description  string   `json:"description,omitempty"`
	Roles        []string `json:"roles"`
	GrantTypes   []string `json:"grant_types"`
	ClientSecret string   `json:"client_secret,omitempty"`
	HasSecret    bool     `json:"has_secret"`
	Disabled     bool     `json:"disabled"`
}

func viewAccount(a *store.ServiceAccount, secret string) accountView {
	return accountView{ID: a.ID, Name: a.Name, Description: a.Description, Roles: orEmpty(a.Roles), GrantTypes: orEmpty(a.GrantTypes),
		ClientSecret: secret, HasSecret: len(a.SecretHash) > 0, Disabled: a.Disabled}
}

// orEmpty makes JSON show an empty list as [] rather than null.
func orEmpty(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func serviceAccountCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "serviceaccount", Aliases: []string{"sa"}, Short: "Manage service accounts (machine users) and their key files"}
	cmd.AddCommand(saCreateCmd(), saListCmd(), saShowCmd(), saUpdateCmd(), saKeyCmd())
	return cmd
}

func saCreateCmd() *cobra.Command {
	var name, description string
	var roles, grants []string
	var withSecret bool
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a service account",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if name == "" {
				return errors.New("--name is required")
			}
			grantTypes := oauth.DefaultAccountGrants()
			if cmd.Flags().Changed("grant") {
				var err error
				if grantTypes, err = parseGrants("--grant", grants); err != nil {
					return err
				}
			}
			now := time.Now()
			a := &store.ServiceAccount{ID: "sa-" + secrets.NewID()[:16], Name: name, Description: description, Roles: roles, GrantTypes: grantTypes, CreatedAt: now, UpdatedAt: now}
			var secret string
			if withSecret {
				secret, a.SecretSalt, a.SecretHash = s.Secrets.NewSecret()
			}
			if err := recordChange(cmd.Context(), s, audit.TypeServiceAccountChanged, a.ID, map[string]any{"action": "created", "name": a.Name, "roles": a.Roles, "grant_types": orEmpty(a.GrantTypes), "secret": withSecret}); err != nil {
				return err
			}
			if err := s.Store.CreateServiceAccount(cmd.Context(), a); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("--role: %v (see `signet role list`)", err)
				}
				return explainStoreErr(err, "service account "+name)
			}
			return output(cmd, viewAccount(a, secret), func(w io.Writer) {
				fmt.Fprintf(w, "Created service account %q\n  id:     %s\n  roles:  %s\n  grants: %s\n", a.Name, a.ID, strings.Join(a.Roles, ", "), listOrNone(a.GrantTypes))
				if secret != "" {
					fmt.Fprintf(w, "  client_id: %s\n  client_secret: %s\n  (shown once; store it now)\n", a.ID, secret)
				}
				fmt.Fprintf(w, "Next: signet serviceaccount key create --serviceaccount %s --out key.json\n", a.Name)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "unique login name (required)")
	f.StringVar(&description, "description", "", "what the account is for")
	f.StringSliceVar(&roles, "role", nil, "role to grant (repeatable), e.g. introspector")
	f.BoolVar(&withSecret, "secret", false, "also create a secret for client_credentials (client_id = the account ID)")
	f.StringSliceVar(&grants, "grant", nil, "grant type the account may use at the token endpoint (repeatable; short names such as jwt-bearer and token-exchange work; default client_credentials and jwt-bearer)")
	return cmd
}

func saListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List service accounts",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			list, err := s.Store.ListServiceAccounts(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]accountView, 0, len(list))
			var rows [][]string
			for i := range list {
				views = append(views, viewAccount(&list[i], ""))
				rows = append(rows, []string{list[i].ID, list[i].Name, strings.Join(list[i].Roles, ","), strings.Join(list[i].GrantTypes, ","), fmt.Sprint(len(list[i].SecretHash) > 0)})
			}
			return output(cmd, views, func(w io.Writer) { table(w, "ID\tNAME\tROLES\tGRANTS\tSECRET", rows) })
		}),
	}
}

func saShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID|NAME",
		Short: "Show a service account: roles, allowed grants, secret, state",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			a, err := findServiceAccount(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			return output(cmd, viewAccount(a, ""), func(w io.Writer) {
				fmt.Fprintf(w, "Service account %q\n  id:       %s\n  roles:    %s\n  grants:   %s\n  secret:   %t\n  disabled: %t\n",
					a.Name, a.ID, strings.Join(a.Roles, ", "), listOrNone(a.GrantTypes), len(a.SecretHash) > 0, a.Disabled)
			})
		}),
	}
}

func saUpdateCmd() *cobra.Command {
	grants := &listEdit{name: "grant", plural: "grants", parse: parseGrants}
	cmd := &cobra.Command{
		Use:   "update ID|NAME --add-grant GRANT | --remove-grant GRANT | --grant GRANT…",
		Short: "Change the grant types a service account may use at the token endpoint",
		Long: "Change the grant types a service account may use at the token endpoint (audited).\n" +
			"--add-grant and --remove-grant change the list and keep the rest; --grant replaces the whole list.",
		Args: cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			f := cmd.Flags()
			if !grants.named(f) {
				return errors.New("nothing to change: use --add-grant or --remove-grant (or --grant to replace the whole list)")
			}
			a, err := findServiceAccount(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			before := a.GrantTypes
			after, err := grants.apply(f, fmt.Sprintf("service account %q", a.Name), before)
			if err != nil {
				return err
			}
			changed := !slices.Equal(before, after)
			if changed {
				a.GrantTypes, a.UpdatedAt = after, time.Now()
				if err := recordChange(cmd.Context(), s, audit.TypeServiceAccountChanged, a.ID, map[string]any{"action": "updated", "name": a.Name,
					"grant_types": orEmpty(after), "previous_grant_types": orEmpty(before)}); err != nil {
					return err
				}
				if err := s.Store.UpdateServiceAccount(cmd.Context(), a); err != nil {
					return explainStoreErr(err, "service account "+a.Name)
				}
			}
			return output(cmd, viewAccount(a, ""), func(w io.Writer) {
				verb := "Updated"
				if !changed {
					verb = "Unchanged:"
				}
				fmt.Fprintf(w, "%s service account %q\n  grants: %s\n", verb, a.Name, listOrNone(a.GrantTypes))
			})
		}),
	}
	grants.register(cmd.Flags(), "a grant type (short names such as token-exchange work)")
	return cmd
}

// listOrNone joins a list for people, saying so when it is empty.
func listOrNone(v []string) string {
	if len(v) == 0 {
		return "(none)"
	}
	return strings.Join(v, ", ")
}

type keyView struct {
	KeyID     string    `json:"key_id"`
	Algorithm string    `json:"algorithm"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

func saKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage a service account's key files"}
	var ref, out, alg, expires, expiresIn string
	var force bool
	create := &cobra.Command{
		Use:   "create --serviceaccount ID|NAME --out key.json",
		Short: "Create a ZITADEL-format key file (the private key is written once, mode 0600)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if ref == "" {
				return errors.New("--serviceaccount is required")
			}
			a, err := findServiceAccount(cmd.Context(), s, ref)
			if err != nil {
				return err
			}
			kf := &keys.KeyFile{Type: keys.TypeServiceAccount, UserID: a.ID}
			return createKeyFile(cmd, s, store.KindServiceAccount, a.ID, kf, alg, expires, expiresIn, out, force)
		}),
	}
	f := create.Flags()
	f.StringVar(&ref, "serviceaccount", "", "service account ID or name (required)")
	f.StringVar(&out, "out", "", "where to write the key file (required)")
	f.StringVar(&alg, "alg", keys.RS256, "RS256 (what ZITADEL clients expect), ES256 or EdDSA")
	f.StringVar(&expires, "expires", "", "expiry date (YYYY-MM-DD or RFC 3339)")
	f.StringVar(&expiresIn, "expires-in", "", "expiry as a duration from now, e.g. 720h")
	f.BoolVar(&force, "force", false, "overwrite an existing file")

	var listRef string
	list := &cobra.Command{
		Use:   "list --serviceaccount ID|NAME",
		Short: "List a service account's keys",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			a, err := findServiceAccount(cmd.Context(), s, listRef)
			if err != nil {
				return err
			}
			ks, err := s.Store.ListPublicKeys(cmd.Context(), store.KindServiceAccount, a.ID)
			if err != nil {
				return err
			}
			views := make([]keyView, 0, len(ks))
			var rows [][]string
			for _, k := range ks {
				views = append(views, keyView{KeyID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt})
				rows = append(rows, []string{k.ID, k.Algorithm, formatTime(k.CreatedAt), formatTime(k.ExpiresAt), formatTime(k.RevokedAt)})
			}
			return output(cmd, views, func(w io.Writer) { table(w, "KEY ID\tALG\tCREATED\tEXPIRES\tREVOKED", rows) })
		}),
	}
	list.Flags().StringVar(&listRef, "serviceaccount", "", "service account ID or name (required)")

	revoke := &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke a key at once: assertions signed with it are refused",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if err := recordChange(cmd.Context(), s, audit.TypePublicKeyChanged, "", map[string]any{"action": "revoked", "key_id": args[0]}); err != nil {
				return err
			}
			if err := s.Store.RevokePublicKey(cmd.Context(), args[0], time.Now()); err != nil {
				return explainStoreErr(err, "key "+args[0])
			}
			return output(cmd, map[string]string{"revoked": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "Revoked key %s\n", args[0]) })
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
