package main

import (
	"errors"
	"fmt"
	"github.com/signet-id/signet/internal/audit"
	"io"
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
	ClientSecret string   `json:"client_secret,omitempty"`
	HasSecret    bool     `json:"has_secret"`
	Disabled     bool     `json:"disabled"`
}

func viewAccount(a *store.ServiceAccount, secret string) accountView {
	roles := a.Roles
	if roles == nil {
		roles = []string{}
	}
	return accountView{ID: a.ID, Name: a.Name, Description: a.Description, Roles: roles, ClientSecret: secret, HasSecret: len(a.SecretHash) > 0, Disabled: a.Disabled}
}

func serviceAccountCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "serviceaccount", Aliases: []string{"sa"}, Short: "Manage service accounts (machine users) and their key files"}
	cmd.AddCommand(saCreateCmd(), saListCmd(), saKeyCmd())
	return cmd
}

func saCreateCmd() *cobra.Command {
	var name, description string
	var roles []string
	var withSecret bool
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a service account",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if name == "" {
				return errors.New("--name is required")
			}
			now := time.Now()
			a := &store.ServiceAccount{ID: "sa-" + secrets.NewID()[:16], Name: name, Description: description, Roles: roles, GrantTypes: oauth.DefaultAccountGrants(), CreatedAt: now, UpdatedAt: now}
			var secret string
			if withSecret {
				secret, a.SecretSalt, a.SecretHash = s.Secrets.NewSecret()
			}
			if err := recordChange(cmd.Context(), s, audit.TypeServiceAccountChanged, a.ID, map[string]any{"action": "created", "name": a.Name, "roles": a.Roles, "secret": withSecret}); err != nil {
				return err
			}
			if err := s.Store.CreateServiceAccount(cmd.Context(), a); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("--role: %v (see `signet role list`)", err)
				}
				return explainStoreErr(err, "service account "+name)
			}
			return output(cmd, viewAccount(a, secret), func(w io.Writer) {
				fmt.Fprintf(w, "Created service account %q\n  id:    %s\n  roles: %s\n", a.Name, a.ID, strings.Join(a.Roles, ", "))
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
				rows = append(rows, []string{list[i].ID, list[i].Name, strings.Join(list[i].Roles, ","), fmt.Sprint(len(list[i].SecretHash) > 0)})
			}
			return output(cmd, views, func(w io.Writer) { table(w, "ID\tNAME\tROLES\tSECRET", rows) })
		}),
	}
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
