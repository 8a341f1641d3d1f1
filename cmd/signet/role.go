package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/manage"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

func roleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Create, list, delete, grant and revoke roles"}
	cmd.AddCommand(roleCreateCmd(), roleUpdateCmd(), roleShowCmd(), roleDeleteCmd(), roleGrantCmd(true), roleGrantCmd(false), &cobra.Command{
		Use:   "list",
		Short: "List roles and their permissions",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			roles, err := s.Store.ListRoles(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]roleView, 0, len(roles))
			var rows [][]string
			for _, r := range roles {
				views = append(views, viewRole(&r))
				rows = append(rows, []string{r.Name, strings.Join(r.Permissions, " "), fmt.Sprint(r.BuiltIn), fmt.Sprint(r.RequireMFA), r.Description})
			}
			return output(cmd, views, func(w io.Writer) { table(w, "ROLE\tPERMISSIONS\tBUILT-IN\tREQUIRES MFA\tDESCRIPTION", rows) })
		}),
	})
	return cmd
}

// roleView is the JSON shape of a role in CLI output.
type roleView struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
	BuiltIn     bool     `json:"built_in"`
	RequireMFA  bool     `json:"require_mfa"`
}

func viewRole(r *store.Role) roleView {
	return roleView{Name: r.Name, Description: r.Description, Permissions: orEmpty(r.Permissions), BuiltIn: r.BuiltIn, RequireMFA: r.RequireMFA}
}

func roleCreateCmd() *cobra.Command {
	var description string
	var requireMFA bool
	var permissions []string
	cmd := &cobra.Command{
		Use:   "create NAME --description TEXT [--permission P…]",
		Short: "Create a role (audited), e.g. customer for exchange rules to name",
		Long: "Create a role (audited). Grant it with `signet role grant`; exchange rules name it with --actor-role,\n" +
			"--subject-role or --exclude-role. A role that rules use only to match people needs no permission;\n" +
			"--permission gives its holders one Signet enforces: " + strings.Join(manage.Permissions, ", ") + ".",
		Args: cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			r, err := roles(s).Create(cmd.Context(), operator(), store.Role{Name: args[0], Description: description, Permissions: permissions, RequireMFA: requireMFA})
			if err != nil {
				return err
			}
			return output(cmd, viewRole(r), func(w io.Writer) {
				fmt.Fprintf(w, "Created role %s (permissions: %s)\nNext: signet role grant %s --user USER\n", r.Name, listOrNone(r.Permissions), r.Name)
			})
		}),
	}
	cmd.Flags().StringVar(&description, "description", "", "what the role is for")
	cmd.Flags().StringSliceVar(&permissions, "permission", nil, "permission its holders get (repeatable): "+strings.Join(manage.Permissions, ", "))
	cmd.Flags().BoolVar(&requireMFA, "require-mfa", false, "its holders need a second factor to sign in")
	return cmd
}

func roleUpdateCmd() *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "update NAME [--description TEXT] [--require-mfa | --no-require-mfa]",
		Short: "Change a role's description, or whether its holders need a second factor to sign in (audited)",
		Long: "Change a role's description, or whether its holders need a second factor to sign in (audited).\n" +
			"Built-in roles too: `signet role update admin --require-mfa` makes every admin use one.",
		Args: cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			var change manage.RoleChange
			f := cmd.Flags()
			if f.Changed("description") {
				change.Description = &description
			}
			if v, set, err := flagPair(f, "require-mfa", "no-require-mfa"); err != nil {
				return err
			} else if set {
				change.RequireMFA = &v
			}
			if change.Description == nil && change.RequireMFA == nil {
				return usageError(errors.New("nothing to change: pass --description, --require-mfa or --no-require-mfa"))
			}
			r, err := roles(s).Update(cmd.Context(), operator(), args[0], change)
			if err != nil {
				return err
			}
			return output(cmd, viewRole(r), func(w io.Writer) {
				fmt.Fprintf(w, "Updated role %s (requires a second factor: %v)\n", r.Name, r.RequireMFA)
			})
		}),
	}
	cmd.Flags().StringVar(&description, "description", "", "what the role is for")
	cmd.Flags().Bool("require-mfa", false, "its holders need a second factor to sign in")
	cmd.Flags().Bool("no-require-mfa", false, "its holders need no second factor because of this role")
	return cmd
}

func roleShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a role",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			r, err := s.Store.GetRole(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no role %q (see `signet role list`)", args[0])
			} else if err != nil {
				return err
			}
			return output(cmd, viewRole(r), func(w io.Writer) {
				fmt.Fprintf(w, "Role %s\n  description: %s\n  permissions: %s\n  built in:    %v\n  requires a second factor: %v\n",
					r.Name, orNone(r.Description), listOrNone(r.Permissions), r.BuiltIn, r.RequireMFA)
			})
		}),
	}
}

func roleDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a role nobody holds and no exchange rule names (built-in roles stay; audited)",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if err := roles(s).Delete(cmd.Context(), operator(), args[0]); err != nil {
				return err
			}
			return output(cmd, map[string]string{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "Deleted role %s\n", args[0]) })
		}),
	}
}

// roles is the one place roles are created and deleted.
func roles(s *server.Server) *manage.Roles {
	return &manage.Roles{Store: s.Store, Policy: s.Policy, Audit: s.Audit}
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
				return fmt.Errorf("no role %q (see `signet role list`, or create it with `signet role create %s --description …`)", role, role)
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
