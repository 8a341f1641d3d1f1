package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

func impersonationCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "impersonation", Short: "See and end delegation and impersonation sessions; the kill switch"}
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List active exchange sessions (--all: ended and expired too)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			var at time.Time
			if !all {
				at = time.Now()
			}
			xs, err := s.Store.ListExchangeSessions(cmd.Context(), at)
			if err != nil {
				return err
			}
			if xs == nil {
				xs = []store.ExchangeSession{}
			}
			disabled, err := s.Sessions.ImpersonationDisabled(cmd.Context())
			if err != nil {
				return err
			}
			var rows [][]string
			for _, x := range xs {
				rows = append(rows, []string{x.ID, x.Kind, x.Actor, x.Subject, x.Client, x.Rule, x.Reason, formatTime(x.ExpiresAt), formatTime(x.EndedAt)})
			}
			return output(cmd, map[string]any{"impersonation_disabled": disabled, "sessions": xs}, func(w io.Writer) {
				if disabled {
					fmt.Fprintln(w, "Impersonation is DISABLED (kill switch on).")
				}
				table(w, "SESSION\tKIND\tACTOR\tSUBJECT\tCLIENT\tRULE\tREASON\tEXPIRES\tENDED", rows)
			})
		}),
	}
	list.Flags().BoolVar(&all, "all", false, "include ended and expired sessions")

	var actor, subject, reason string
	end := &cobra.Command{
		Use:   "end [SESSION] [--actor ID | --subject ID]",
		Short: "End one session, or every active session of an actor or about a subject; their tokens stop working at once",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			ctx := cmd.Context()
			n := 0
			var err error
			switch {
			case len(args) == 1 && actor == "" && subject == "":
				err = s.Sessions.End(ctx, args[0], operator(), reason)
				n = 1
			case len(args) == 0 && actor != "" && subject == "":
				n, err = s.Sessions.EndActor(ctx, actor, operator(), reason)
			case len(args) == 0 && subject != "" && actor == "":
				n, err = s.Sessions.EndSubject(ctx, subject, operator(), reason)
			default:
				return errors.New("name one session, or --actor, or --subject")
			}
			if err != nil {
				return err
			}
			return output(cmd, map[string]int{"ended": n}, func(w io.Writer) { fmt.Fprintf(w, "Ended %d session(s); their tokens are inactive.\n", n) })
		}),
	}
	end.Flags().StringVar(&actor, "actor", "", "end every active session of this actor (user or service account ID)")
	end.Flags().StringVar(&subject, "subject", "", "end every active session about this user ID")
	end.Flags().StringVar(&reason, "reason", "", "why (audited)")

	var switchReason string
	disable := &cobra.Command{
		Use:   "disable",
		Short: "Kill switch: refuse all impersonation and make every impersonation token inactive",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if err := s.Sessions.Disable(cmd.Context(), operator(), switchReason); err != nil {
				return err
			}
			return output(cmd, map[string]bool{"impersonation_disabled": true}, func(w io.Writer) {
				fmt.Fprintln(w, "Impersonation disabled; every impersonation token is inactive.")
			})
		}),
	}
	disable.Flags().StringVar(&switchReason, "reason", "", "why (audited)")
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Allow impersonation again (under the rules)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if err := s.Sessions.Enable(cmd.Context(), operator(), switchReason); err != nil {
				return err
			}
			return output(cmd, map[string]bool{"impersonation_disabled": false}, func(w io.Writer) { fmt.Fprintln(w, "Impersonation enabled.") })
		}),
	}
	enable.Flags().StringVar(&switchReason, "reason", "", "why (audited)")
	cmd.AddCommand(list, end, disable, enable)
	return cmd
}
