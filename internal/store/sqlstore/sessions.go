package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// EndExchangeSessions ends every open session of one actor, subject or requesting client in one
// statement (ending thousands of sessions must not take one transaction each).
func (s *Store) EndExchangeSessions(ctx context.Context, sel store.SessionSelector, by string, at time.Time) (int, error) {
	column, value, err := sessionColumn(sel)
	if err != nil {
		return 0, err
	}
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE exchange_sessions SET ended_at = ?, ended_by = ? WHERE `+column+` = ? AND ended_at = 0 AND expires_at > ?`),
		ts(at), by, value, ts(at))
	if err != nil {
		return 0, s.mapErr(err, "end exchange sessions")
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func sessionColumn(sel store.SessionSelector) (column, value string, err error) {
	set := 0
	for _, c := range []struct{ column, value string }{{"actor", sel.Actor}, {"subject", sel.Subject}, {"client", sel.Client}, {"kind", sel.Kind}} {
		if c.value != "" {
			column, value = c.column, c.value
			set++
		}
	}
	if set != 1 {
		return "", "", errors.New("end exchange sessions: name exactly one of actor, subject, client or kind")
	}
	return column, value, nil
}
