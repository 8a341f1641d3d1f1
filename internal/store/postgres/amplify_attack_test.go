package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

// TestAttackFailingWritesCostLinearOnPostgres (held, measured): n writes that must change one row
// and change none (a reused refresh token: UPDATE … WHERE used_at = 0 wrapped in
// signet_expect_rows, then its Refuse read) are sent at once by n callers, so they share batches.
// The writer's time grows linearly with n (×4 writes → about ×4 time, not ×16); each failing write
// costs the single writer about four round trips (its failed pipeline, the ROLLBACK, Refuse's
// read, the re-run of the writes before it), which the log reports next to a good write's cost.
func TestAttackFailingWritesCostLinearOnPostgres(t *testing.T) {
	s, _, _ := attackStore(t)
	ctx := context.Background()
	b := s.Batcher()
	if _, err := s.W.Exec(`CREATE TABLE tok (h INTEGER PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	reuse := func(h int) *sqlstore.Write {
		return &sqlstore.Write{What: fmt.Sprintf("token %d", h), Stmts: []sqlstore.Stmt{{
			Query: `UPDATE tok SET used = 1 WHERE h = ? AND used = 0`, Args: []any{h}, Want: 1,
			Refuse: func(ctx context.Context) error {
				var used int
				if err := s.R.QueryRowContext(ctx, `SELECT used FROM tok WHERE h = $1`, h).Scan(&used); err != nil {
					return err
				}
				return store.ErrConflict
			},
		}}}
	}
	run := func(n int, bad bool) time.Duration {
		if _, err := s.W.Exec(`DELETE FROM tok; INSERT INTO tok (h, used) SELECT g, 1 FROM generate_series(1, 2000) g`); err != nil {
			t.Fatal(err)
		}
		if !bad {
			if _, err := s.W.Exec(`UPDATE tok SET used = 0`); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		start := time.Now()
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- b.Do(ctx, reuse(i+1)) }()
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		for err := range errs {
			if bad != (err != nil) || (bad && !errors.Is(err, store.ErrConflict)) {
				t.Fatalf("bad=%v: %v", bad, err)
			}
		}
		return took
	}
	good := run(256, false)
	small, large := run(64, true), run(256, true)
	huge := run(1000, true)
	t.Logf("1000 failing: %v", huge)
	t.Logf("256 good writes: %v; 64 failing: %v; 256 failing: %v (%.1f µs per failing write, %.1f µs per good one)",
		good, small, large, float64(large.Microseconds())/256, float64(good.Microseconds())/256)
	if large > 12*small+50*time.Millisecond {
		t.Errorf("4× the failing writes took %.1f× the time: worse than linear", float64(large)/float64(small))
	}
}
