package main

import (
	"errors"
	"fmt"
	"github.com/signet-id/signet/internal/audit"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

func roleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Grant and list roles"}
	cmd.AddCommand(roleGrantCmd(true), roleGrantCmd(false), &cobra.Command{
		Use:   "list",
		Short: "List roles and their permissions",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			roles, err := s.Store.ListRoles(cmd.Context())
			if err != nil {
				return err
			}
			var rows [][]string
			for _, r := range roles {
				rows = append(rows, []string{r.Name, strings.Join(r.Permissions, " "), r.Description})
			}
			return output(cmd, roles, func(w io.Writer) { table(w, "ROLE\tPERMISSIONS\tDESCRIPTION", rows) })
		}),
	})
	return cmd
}

// roleGrantCmd builds `role grant` or `role revoke`.
func roleGrantCmd(grant bool) *cobra.Command {
	var user, account, client string
	use, short := "grant ROLE", "Grant a role to a user, service account or client"
	if !grant {
		use, short = "revoke ROLE", "Take a role away"
	}
	cmd := &cobra.Command{
		Use:   use + " (--user X | --serviceaccount X | --client X)",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			role := args[0]
			if _, err := s.Store.GetRole(ctx, role); err != nil {
				return fmt.Errorf("no role %q (see `signet role list`)", role)
			}
			var kind store.PrincipalKind
			var id, name string
			switch {
			case user != "" && account == "" && client == "":
				u, err := findUser(ctx, s, user)
				if err != nil {
					return err
				}
				kind, id, name = store.KindUser, u.ID, u.Username
			case account != "" && user == "" && client == "":
				a, err := findServiceAccount(ctx, s, account)
				if err != nil {
					return err
				}
				kind, id, name = store.KindServiceAccount, a.ID, a.Name
			case client != "" && user == "" && account == "":
				c, err := findClient(ctx, s, client)
				if err != nil {
					return err
				}
				kind, id, name = store.KindClient, c.ID, c.ID
			default:
				return errors.New("name exactly one of --user, --serviceaccount or --client")
			}
			action := map[bool]string{true: "granted", false: "revoked"}[grant]
			if err := recordChange(ctx, s, audit.TypeRoleChanged, id, map[string]any{"action": action, "role": role, "principal_kind": kind}); err != nil {
				return err
			}
			var err error
			verb := "Granted"
			if grant {
				err = s.Store.GrantRole(ctx, kind, id, role)
			} else {
				verb = "Revoked"
				err = s.Store.RevokeRole(ctx, kind, id, role)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("%s %s does not have role %s", kind, name, role)
				}
			}
			if err != nil {
				return err
			}
			return output(cmd, map[string]string{"role": role, "principal_kind": string(kind), "principal_id": id}, func(w io.Writer) {
				fmt.Fprintf(w, "%s role %s for %s %s\n", verb, role, kind, name)
			})
		}),
	}
	cmd.Flags().StringVar(&user, "user", "", "user ID or username")
	cmd.Flags().StringVar(&account, "serviceaccount", "", "service account ID or name")
	cmd.Flags().StringVar(&client, "client", "", "client ID")
	return cmd
}
