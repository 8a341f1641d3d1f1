package main

import (
	"errors"
	"fmt"
	"github.com/signet-id/signet/internal/audit"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

type userView struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	Roles       []string `json:"roles"`
	Locked      bool     `json:"locked"`
	Password    string   `json:"password,omitempty"`
}

func viewUser(u *store.User, password string) userView {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName, Roles: roles, Locked: u.Locked, Password: password}
}

func userCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (people)"}
	cmd.AddCommand(userCreateCmd(), userListCmd(), userLockCmd(true), userLockCmd(false), userSetPasswordCmd())
	return cmd
}

func userCreateCmd() *cobra.Command {
	var username, email, display, password string
	var generate bool
	var roles []string
	cmd := &cobra.Command{
		Use:   "create --username U",
		Short: "Create a user (a generated password is printed once)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if username == "" {
				return errors.New("--username is required")
			}
			if password != "" && generate {
				return errors.New("use --password or --generate-password, not both")
			}
			shown := ""
			if generate {
				password = secrets.RandomString(18)
				shown = password
			}
			if password != "" && len(password) < 12 {
				return errors.New("--password must have at least 12 characters")
			}
			now := time.Now()
			u := &store.User{ID: "u-" + secrets.NewID()[:16], Username: username, Email: email, DisplayName: display, Roles: roles, CreatedAt: now, UpdatedAt: now}
			if password != "" {
				u.PasswordHash = secrets.HashPassword(password)
			}
			if err := recordChange(cmd.Context(), s, audit.TypeUserChanged, u.ID, map[string]any{"action": "created", "username": u.Username, "roles": u.Roles}); err != nil {
				return err
			}
			if err := s.Store.CreateUser(cmd.Context(), u); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("--role: %v (see `signet role list`)", err)
				}
				return explainStoreErr(err, "a user with this username or email")
			}
			return output(cmd, viewUser(u, shown), func(w io.Writer) {
				roles := "no roles"
				if len(u.Roles) > 0 {
					roles = "roles " + strings.Join(u.Roles, ", ")
				}
				fmt.Fprintf(w, "Created user %s (id %s, %s)\n", u.Username, u.ID, roles)
				if shown != "" {
					fmt.Fprintf(w, "  password: %s\n  (shown once; store it now)\n", shown)
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "unique login name (required)")
	f.StringVar(&email, "email", "", "email address (unique)")
	f.StringVar(&display, "display-name", "", "display name")
	f.StringVar(&password, "password", "", "password (at least 12 characters); prefer --generate-password")
	f.BoolVar(&generate, "generate-password", false, "generate a password and print it once")
	f.StringSliceVar(&roles, "role", nil, "role to grant (repeatable)")
	return cmd
}

func userListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			list, err := s.Store.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]userView, 0, len(list))
			var rows [][]string
			for i := range list {
				u := &list[i]
				views = append(views, viewUser(u, ""))
				rows = append(rows, []string{u.ID, u.Username, u.Email, strings.Join(u.Roles, ","), fmt.Sprint(u.Locked)})
			}
			return output(cmd, views, func(w io.Writer) { table(w, "ID\tUSERNAME\tEMAIL\tROLES\tLOCKED", rows) })
		}),
	}
}

func userLockCmd(lock bool) *cobra.Command {
	use, short := "lock USER", "Lock a user out"
	if !lock {
		use, short = "unlock USER", "Let a locked user in again"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			u, err := findUser(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			u.Locked, u.UpdatedAt = lock, time.Now()
			if err := recordChange(cmd.Context(), s, audit.TypeUserChanged, u.ID, map[string]any{"action": map[bool]string{true: "locked", false: "unlocked"}[lock]}); err != nil {
				return err
			}
			if err := s.Store.UpdateUser(cmd.Context(), u); err != nil {
				return err
			}
			if lock {
				// Unlocking later must not bring back what was issued before the lock.
				if err := s.Sessions.RetirePrincipal(cmd.Context(), store.KindUser, u.ID, operator(), "user "+u.Username+" locked", s.Config.MaxAccessTTL); err != nil {
					return err
				}
			}
			return output(cmd, viewUser(u, ""), func(w io.Writer) { fmt.Fprintf(w, "User %s locked: %v\n", u.Username, u.Locked) })
		}),
	}
}

// userSetPasswordCmd sets a new password: how an operator recovers the first-run admin whose
// generated password was lost, or resets anyone's.
func userSetPasswordCmd() *cobra.Command {
	var password string
	var generate bool
	cmd := &cobra.Command{
		Use:   "set-password USER (--generate-password | --password P)",
		Short: "Set a user's password (recovers the first-run admin: `signet user set-password admin --generate-password`)",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			shown := ""
			switch {
			case password != "" && generate:
				return usageError(errors.New("use --password or --generate-password, not both"))
			case generate:
				password = secrets.RandomString(18)
				shown = password
			case password == "":
				return usageError(errors.New("pass --generate-password (printed once) or --password"))
			case len(password) < 12:
				return errors.New("--password must have at least 12 characters")
			}
			u, err := findUser(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			u.PasswordHash, u.UpdatedAt = secrets.HashPassword(password), time.Now()
			if err := recordChange(cmd.Context(), s, audit.TypeUserChanged, u.ID, map[string]any{"action": "password set"}); err != nil {
				return err
			}
			if err := s.Store.UpdateUser(cmd.Context(), u); err != nil {
				return err
			}
			return output(cmd, viewUser(u, shown), func(w io.Writer) {
				fmt.Fprintf(w, "Set a new password for %s\n", u.Username)
				if shown != "" {
					fmt.Fprintf(w, "  password: %s\n  (shown once; store it now)\n", shown)
				}
			})
		}),
	}
	cmd.Flags().StringVar(&password, "password", "", "the new password (at least 12 characters); prefer --generate-password")
	cmd.Flags().BoolVar(&generate, "generate-password", false, "generate a password and print it once")
	return cmd
}
