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
	var anchorFlags []string
	verify := &cobra.Command{
		Use:   "verify [--anchor [CHAIN@]SEQ:HASH:TAG]",
		Short: "Walk every keyed hash chain; name the first broken link; print each chain's head as an anchor to keep elsewhere",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			anchors := make([]audit.Anchor, 0, len(anchorFlags))
			for _, f := range anchorFlags {
				a, err := audit.ParseAnchor(f)
				if err != nil {
					return err
				}
				anchors = append(anchors, a)
			}
			res, err := audit.Verify(cmd.Context(), s.Store, s.Secrets.AuditKey(), anchors...)
			if err != nil {
				return err
			}
			if err := output(cmd, res, func(w io.Writer) { printVerify(w, res) }); err != nil {
				return err
			}
			if !res.Intact {
				return fmt.Errorf("audit log broken: %s", res.Reason)
			}
			return nil
		}),
	}
	verify.Flags().StringArrayVar(&anchorFlags, "anchor", nil, "an anchor an earlier verify printed: that event must still have that hash (repeatable)")
	cmd.AddCommand(list, verify)
	return cmd
}

// printVerify writes what verify found: the verdict, which events predate the keyed chain, and the
// head with its anchor for the operator to keep outside the database.
func printVerify(w io.Writer, res *audit.Result) {
	if !res.Intact {
		switch {
		case res.Position == 0 && res.Seq == 0:
			fmt.Fprintf(w, "BROKEN: %s\n", res.Reason)
		case res.Chain == "":
			fmt.Fprintf(w, "BROKEN at event %d: %s (%d events before it verified)\n", res.Position, res.Reason, res.Events)
		default:
			fmt.Fprintf(w, "BROKEN in chain %s at event %d: %s (%d events before it verified)\n", res.Chain, res.Position, res.Reason, res.Events)
		}
		return
	}
	if len(res.Chains) > 1 {
		fmt.Fprintf(w, "OK: %d events in %d chains, every chain intact\n", res.Events, len(res.Chains))
	} else {
		fmt.Fprintf(w, "OK: %d events, chain intact\n", res.Events)
	}
	var legacyHead int64 // the last event of chain ""
	for _, h := range res.Chains {
		if h.Chain == "" {
			legacyHead = h.Position
		}
	}
	switch {
	case res.Unkeyed > 0 && res.KeyedFrom > legacyHead:
		fmt.Fprintf(w, "all %d events of chain \"\" were written before the keyed chain (SHA-256 only); the next event seals them with its HMAC\n", res.Unkeyed)
	case res.Unkeyed > 0:
		fmt.Fprintf(w, "events 1-%d were written before the keyed chain (SHA-256 only) and are sealed by event %d's HMAC\n", res.Unkeyed, res.KeyedFrom)
	}
	for _, h := range res.Chains {
		if h.Chain == "" {
			fmt.Fprintf(w, "head: event %d, hash %s\n", h.Position, h.Hash)
		} else {
			fmt.Fprintf(w, "head of chain %s: event %d (seq %d), hash %s\n", h.Chain, h.Position, h.Seq, h.Hash)
		}
		fmt.Fprintf(w, "anchor: %s\n", h.Anchor)
	}
	if len(res.Chains) > 0 {
		fmt.Fprintln(w, "(keep the anchors outside the database; `signet audit verify --anchor <it>` later detects deleted or rewritten events)")
	}
}
