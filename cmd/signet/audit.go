package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

type auditView struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Type    string          `json:"type"`
	Actor   string          `json:"actor"`
	Subject string          `json:"subject"`
	Client  string          `json:"client"`
	Details json.RawMessage `json:"details"`
	Hash    string          `json:"hash"`
}

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the tamper-evident audit log"}
	var f store.AuditFilter
	var since string
	list := &cobra.Command{
		Use:   "list [--actor ID] [--subject ID] [--type T] [--since 2026-11-01|24h]",
		Short: "List audit events, oldest first",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					f.Since = time.Now().Add(-d)
				} else if t, err := time.Parse("2006-01-02", since); err == nil {
					f.Since = t
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					f.Since = t
				} else {
					return fmt.Errorf("--since %q: use a duration (24h), a date (2026-11-01) or RFC 3339", since)
				}
			}
			events, err := s.Store.ListAudit(cmd.Context(), f)
			if err != nil {
				return err
			}
			views := make([]auditView, 0, len(events))
			var rows [][]string
			for _, e := range events {
				views = append(views, auditView{Seq: e.Seq, At: e.At, Type: e.Type, Actor: e.Actor, Subject: e.Subject, Client: e.Client,
					Details: json.RawMessage(e.Details), Hash: hex.EncodeToString(e.Hash)})
				rows = append(rows, []string{fmt.Sprint(e.Seq), e.At.UTC().Format(time.RFC3339), e.Type, e.Actor, e.Subject, e.Client, string(e.Details)})
			}
			return output(cmd, views, func(w io.Writer) { table(w, "SEQ\tAT\tTYPE\tACTOR\tSUBJECT\tCLIENT\tDETAILS", rows) })
		}),
	}
	list.Flags().StringVar(&f.Actor, "actor", "", "only events with this actor")
	list.Flags().StringVar(&f.Subject, "subject", "", "only events about this subject")
	list.Flags().StringVar(&f.Type, "type", "", "only this event type (e.g. exchange.allowed)")
	list.Flags().StringVar(&since, "since", "", "only events since a date or for the last duration")
	list.Flags().IntVar(&f.Limit, "limit", 0, "at most this many events")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Walk the hash chain; name the first broken link (edited, deleted or reordered event)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			res, err := audit.Verify(cmd.Context(), s.Store, s.Secrets.AuditKey())
			if err != nil {
				return err
			}
			if err := output(cmd, res, func(w io.Writer) {
				if res.Intact {
					fmt.Fprintf(w, "OK: %d events, chain intact\n", res.Events)
					return
				}
				fmt.Fprintf(w, "BROKEN at event %d: %s (%d events before it verified)\n", res.Seq, res.Reason, res.Events)
			}); err != nil {
				return err
			}
			if !res.Intact {
				return fmt.Errorf("audit log broken at event %d", res.Seq)
			}
			return nil
		}),
	}
	cmd.AddCommand(list, verify)
	return cmd
}
