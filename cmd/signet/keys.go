package main

import (
	"fmt"
	"github.com/signet-id/signet/internal/audit"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/server"
)

func keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the issuer's signing keys"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys (next, active, retired)",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			infos := s.Keys.List()
			var rows [][]string
			for _, k := range infos {
				rows = append(rows, []string{k.ID, k.Algorithm, k.State, formatTime(k.CreatedAt), formatTime(k.ActivatedAt), formatTime(k.RetiredAt)})
			}
			return output(cmd, infos, func(w io.Writer) { table(w, "KEY ID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED", rows) })
		}),
	}
	var alg string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Activate the next key, retire the active one (still published until its tokens expire) and create a new next key",
		RunE: withServer(func(cmd *cobra.Command, args []string, s *server.Server) error {
			if alg == "" {
				alg = s.Config.SigningAlg
			}
			if _, err := s.Keys.Ensure(cmd.Context(), alg); err != nil {
				return err
			}
			if err := recordChange(cmd.Context(), s, audit.TypeSigningKeyRotated, "", map[string]any{"algorithm": alg}); err != nil {
				return err
			}
			if err := s.Keys.Rotate(cmd.Context(), alg, time.Now()); err != nil {
				return err
			}
			var active string
			for _, k := range s.Keys.List() {
				if k.Algorithm == alg && k.State == "active" {
					active = k.ID
				}
			}
			return output(cmd, map[string]string{"alg": alg, "active": active}, func(w io.Writer) {
				fmt.Fprintf(w, "Rotated %s: active key is now %s. Running servers pick it up within the poll interval.\n", alg, active)
			})
		}),
	}
	rotate.Flags().StringVar(&alg, "alg", "", "algorithm to rotate (default: the server's --signing-alg)")
	cmd.AddCommand(list, rotate)
	return cmd
}
