package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

// userView is the JSON shape of a user in CLI output.
type userView struct {
	ID                 string   `json:"id"`
	Username           string   `json:"username"`
	Email              string   `json:"email,omitempty"`
	DisplayName        string   `json:"display_name,omitempty"`
	Roles              []string `json:"roles"`
	Locked             bool     `json:"locked"`
	HasPassword        bool     `json:"has_password"`
	MustChangePassword bool     `json:"must_change_password"`
	MFARequired        bool     `json:"mfa_required"`
	// TOTPEnrolled is set by commands that look the factor up (user list); omitted elsewhere.
	TOTPEnrolled *bool  `json:"totp_enrolled,omitempty"`
	Password     string `json:"password,omitempty"` // a generated password, shown once
	// SessionsEnded is set by set-password: a password set by an operator signs the user out.
	SessionsEnded *int `json:"sessions_ended,omitempty"`
}

func viewUser(u *store.User, password string) userView {
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName, Roles: orEmpty(u.Roles), Locked: u.Locked,
		HasPassword: u.PasswordHash != "", MustChangePassword: u.PasswordChangeRequired, MFARequired: u.MFARequired, Password: password}
}

func userCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (people who sign in)"}
	mfa := &cobra.Command{Use: "mfa", Short: "Manage a user's second factors"}
	mfa.AddCommand(userMFAResetCmd())
	cmd.AddCommand(userCreateCmd(), userListCmd(), userLockCmd(true), userLockCmd(false), userSetPasswordCmd(), userDeleteCmd(), mfa)
	return cmd
}

// passwordFlags are the ways a command gets a password: generated (printed once), one line of
// standard input, or the command line (visible to other local users: discouraged).
type passwordFlags struct {
	generate, stdin, none bool
	value                 string
}

// resolve returns the password and, when it was generated, the same value to show once. allowNone
// lets --no-password leave the user without one.
func (p *passwordFlags) resolve(cmd *cobra.Command, s *server.Server, defaultGenerate bool) (password, shown string, err error) {
	n := 0
	for _, set := range []bool{p.generate, p.stdin, p.none, p.value != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return "", "", usageError(errors.New("use one of --generate-password, --password-stdin, --no-password or --password"))
	case p.none:
		return "", "", nil
	case p.stdin:
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", "", fmt.Errorf("--password-stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
		if password == "" {
			return "", "", usageError(errors.New("--password-stdin: standard input has no password (one line is read)"))
		}
	case p.value != "":
		password = p.value
	case p.generate || defaultGenerate:
		password = secrets.RandomString(18)
		return password, password, nil
	default:
		return "", "", usageError(errors.New("pass --generate-password (printed once), --password-stdin or --password"))
	}
	if min := minPassword(s); len([]rune(password)) < min {
		return "", "", usageError(fmt.Errorf("the password must have at least %d characters (the server's --min-password-length)", min))
	}
	return password, "", nil
}

func (p *passwordFlags) register(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.BoolVar(&p.stdin, "password-stdin", false, "read the password from one line of standard input")
	if create {
		f.BoolVar(&p.generate, "generate-password", false, "generate a password and print it once (the default)")
		f.BoolVar(&p.none, "no-password", false, "create the user without a password: they cannot sign in until one is set")
	} else {
		f.BoolVar(&p.generate, "generate-password", false, "generate a password and print it once")
	}
	f.StringVar(&p.value, "password", "", "the password (visible in the process list and shell history: prefer --password-stdin)")
}

func minPassword(s *server.Server) int {
	if s.Config.MinPassword > 0 {
		return s.Config.MinPassword
	}
	return 12
}

func userCreateCmd() *cobra.Command {
	var username, email, display string
	var mustChange, requireMFA bool
	var roles []string
	var pw passwordFlags
	cmd := &cobra.Command{
		Use:   "create --username U [--email E] [--name N] [--role R…]",
		Short: "Create a user; unless one is given, a password is generated and printed once",
		Long: `Create a user (audited). Unless --password-stdin gives one, a password is generated and printed
once, and the user must change it at their first sign-in (--must-change-password=false turns that
off). Passwords are stored as argon2id hashes.
  signet user create --username dana --email dana@example.com --name "Dana Lee" --role support
  printf '%s\n' "$PASSWORD" | signet user create --username sam --password-stdin`,
		Args: cobra.NoArgs,
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if username == "" {
				return usageError(errors.New("--username is required"))
			}
			password, shown, err := pw.resolve(cmd, s, true)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("must-change-password") {
				mustChange = shown != ""
			}
			if mustChange && password == "" {
				return usageError(errors.New("--must-change-password needs a password (drop --no-password)"))
			}
			now := time.Now()
			u := &store.User{ID: "u-" + secrets.NewID()[:16], Username: username, Email: email, DisplayName: display, Roles: roles,
				PasswordChangeRequired: mustChange, MFARequired: requireMFA, CreatedAt: now, UpdatedAt: now}
			if password != "" {
				u.PasswordHash = secrets.HashPassword(password)
			}
			if err := recordChange(cmd.Context(), s, audit.TypeUserChanged, u.ID, map[string]any{"action": "created", "username": u.Username, "roles": orEmpty(u.Roles),
				"must_change_password": u.PasswordChangeRequired, "mfa_required": u.MFARequired}); err != nil {
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
				if u.PasswordChangeRequired {
					fmt.Fprintln(w, "  They choose a new password at their first sign-in.")
				}
				if u.MFARequired {
					fmt.Fprintln(w, "  Every sign-in needs a second factor (enrolled at the first one).")
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "unique login name (required)")
	f.StringVar(&email, "email", "", "email address (unique)")
	f.StringVar(&display, "name", "", "display name")
	f.StringVar(&display, "display-name", "", "display name (same as --name)")
	f.MarkHidden("display-name")
	f.BoolVar(&mustChange, "must-change-password", false, "make the first sign-in ask for a new password (default: true when the password is generated)")
	f.BoolVar(&requireMFA, "require-mfa", false, "every sign-in needs a second factor (TOTP, enrolled at the first sign-in)")
	f.StringSliceVar(&roles, "role", nil, "role to grant (repeatable)")
	pw.register(cmd, true)
	return cmd
}

// totpEnrolled reports whether the user has a confirmed authenticator app.
func totpEnrolled(ctx context.Context, s *server.Server, userID string) (bool, error) {
	f, err := s.Store.GetTOTP(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !f.ConfirmedAt.IsZero(), nil
}

func userListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users: locked, second factor required or enrolled, password change pending",
		Args:  cobra.NoArgs,
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			list, err := s.Store.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			yesNo := map[bool]string{true: "yes", false: "-"}
			views := make([]userView, 0, len(list))
			var rows [][]string
			for i := range list {
				u := &list[i]
				enrolled, err := totpEnrolled(cmd.Context(), s, u.ID)
				if err != nil {
					return err
				}
				v := viewUser(u, "")
				v.TOTPEnrolled = &enrolled
				views = append(views, v)
				rows = append(rows, []string{u.ID, u.Username, orDash(u.Email), orDash(strings.Join(u.Roles, ",")), yesNo[u.Locked],
					yesNo[u.MFARequired], yesNo[enrolled], yesNo[u.PasswordChangeRequired]})
			}
			return output(cmd, views, func(w io.Writer) {
				table(w, "ID\tUSERNAME\tEMAIL\tROLES\tLOCKED\tMFA REQUIRED\tTOTP\tMUST CHANGE PASSWORD", rows)
			})
		}),
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// endUserSessions signs a user out of every browser, revoking what the sessions issued: the same
// path as a user's own "sign out everywhere".
func endUserSessions(ctx context.Context, s *server.Server, u *store.User, why string) (int, error) {
	ended, err := s.SignIn.EndUserSessions(ctx, u.ID, operator(), why)
	return len(ended), err
}

func userLockCmd(lock bool) *cobra.Command {
	use, short := "lock USER", "Lock a user out: they are signed out everywhere and what they hold stops working"
	if !lock {
		use, short = "unlock USER", "Let a locked user sign in again (tokens revoked by the lock stay revoked)"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			u, err := findUser(ctx, s, args[0])
			if err != nil {
				return err
			}
			action := map[bool]string{true: "locked", false: "unlocked"}[lock]
			u.Locked, u.UpdatedAt = lock, time.Now()
			if err := recordChange(ctx, s, audit.TypeUserChanged, u.ID, map[string]any{"action": action, "username": u.Username}); err != nil {
				return err
			}
			if err := s.Store.UpdateUser(ctx, u); err != nil {
				return err
			}
			ended := 0
			if lock {
				// Unlocking later must not bring back what was issued before the lock.
				if err := s.Sessions.RetirePrincipal(ctx, store.KindUser, u.ID, operator(), "user "+u.Username+" locked", s.Config.MaxAccessTTL); err != nil {
					return err
				}
				if ended, err = endUserSessions(ctx, s, u, "locked"); err != nil {
					return err
				}
			}
			v := struct {
				userView
				SessionsEnded int `json:"sessions_ended"`
			}{viewUser(u, ""), ended}
			return output(cmd, v, func(w io.Writer) {
				fmt.Fprintf(w, "User %s %s", u.Username, action)
				if lock {
					fmt.Fprintf(w, "; %d browser session(s) ended", ended)
				}
				fmt.Fprintln(w)
			})
		}),
	}
}

// userSetPasswordCmd sets a new password: how an operator recovers the first-run admin whose
// generated password was lost, or resets anyone's.
func userSetPasswordCmd() *cobra.Command {
	var pw passwordFlags
	var temporary bool
	cmd := &cobra.Command{
		Use:   "set-password USER (--generate-password | --password-stdin) [--temporary]",
		Short: "Set a user's password (recovers the first-run admin: `signet user set-password admin --generate-password`)",
		Long: `Set a user's password (audited) and sign them out of every browser. With --temporary the user
must choose a new one at their next sign-in; without it, a pending password change is cleared.`,
		Args: cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			password, shown, err := pw.resolve(cmd, s, false)
			if err != nil {
				return err
			}
			u, err := findUser(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			u.PasswordHash, u.PasswordChangeRequired, u.UpdatedAt = secrets.HashPassword(password), temporary, time.Now()
			if err := recordChange(cmd.Context(), s, audit.TypeUserChanged, u.ID, map[string]any{"action": "password set", "username": u.Username, "temporary": temporary}); err != nil {
				return err
			}
			if err := s.Store.UpdateUser(cmd.Context(), u); err != nil {
				return err
			}
			// A password an operator sets replaces one that may be known to someone else: every
			// browser signed in with the old one is signed out (and what it issued revoked).
			ended, err := endUserSessions(cmd.Context(), s, u, "password set by operator")
			if err != nil {
				return err
			}
			view := viewUser(u, shown)
			view.SessionsEnded = &ended
			return output(cmd, view, func(w io.Writer) {
				fmt.Fprintf(w, "Set a new password for %s; %d browser session(s) ended\n", u.Username, ended)
				if shown != "" {
					fmt.Fprintf(w, "  password: %s\n  (shown once; store it now)\n", shown)
				}
				if temporary {
					fmt.Fprintln(w, "  They choose a new password at their next sign-in.")
				}
			})
		}),
	}
	pw.register(cmd, false)
	cmd.Flags().BoolVar(&temporary, "temporary", false, "make the next sign-in ask for a new password")
	return cmd
}

func userDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete USER",
		Short: "Delete a user with their role grants, consents and second factors; they are signed out everywhere",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			u, err := findUser(ctx, s, args[0])
			if err != nil {
				return err
			}
			if err := recordChange(ctx, s, audit.TypeUserChanged, u.ID, map[string]any{"action": "deleted", "username": u.Username, "roles": orEmpty(u.Roles)}); err != nil {
				return err
			}
			// Sessions first, so that each one's tokens are revoked by sid and its end audited; the
			// store ends any that starts in between.
			ended, err := endUserSessions(ctx, s, u, "deleted")
			if err != nil {
				return err
			}
			if err := s.Store.DeleteUser(ctx, u.ID); err != nil {
				return explainStoreErr(err, "user "+u.Username)
			}
			if err := s.Sessions.RetirePrincipal(ctx, store.KindUser, u.ID, operator(), "user "+u.Username+" deleted", s.Config.MaxAccessTTL); err != nil {
				return err
			}
			return output(cmd, map[string]any{"deleted": u.ID, "username": u.Username, "sessions_ended": ended}, func(w io.Writer) {
				fmt.Fprintf(w, "Deleted user %s (id %s); %d browser session(s) ended\n", u.Username, u.ID, ended)
			})
		}),
	}
}

func userMFAResetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reset USER",
		Short: "Remove a user's authenticator app and recovery codes (a lost phone); they enrol again when a second factor is next needed",
		Args:  cobra.ExactArgs(1),
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			u, err := findUser(ctx, s, args[0])
			if err != nil {
				return err
			}
			if err := recordChange(ctx, s, audit.TypeMFAChanged, u.ID, map[string]any{"action": "reset by operator", "username": u.Username}); err != nil {
				return err
			}
			if err := s.Store.DeleteSecondFactors(ctx, u.ID); err != nil {
				return err
			}
			return output(cmd, map[string]any{"user": u.ID, "username": u.Username, "second_factors_removed": true}, func(w io.Writer) {
				fmt.Fprintf(w, "Removed the second factors of %s: their authenticator app and recovery codes no longer work\n", u.Username)
				if u.MFARequired {
					fmt.Fprintln(w, "  A second factor is required for them: they enrol a new one at their next sign-in.")
				}
			})
		}),
	}
}
