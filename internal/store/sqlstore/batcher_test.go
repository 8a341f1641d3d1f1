package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

// TestConcurrentWritesShareOneCommit: writes queued while a commit is under way are committed
// together — one transaction, one fsync — and each caller still gets its own result.
func TestConcurrentWritesShareOneCommit(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := st.Batcher()
	ctx := context.Background()
	if err := b.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (n INTEGER PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c0, i0 := b.Stats()

	// The first write holds the writer until the others are queued behind it.
	release, holding := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- b.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
			close(holding)
			<-release
			_, err := tx.ExecContext(ctx, `INSERT INTO t (n) VALUES (0)`)
			return err
		})
	}()
	<-holding
	const n = 63
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if i == 7 {
					return fmt.Errorf("item %d fails", i) // rolled back alone
				}
				_, err := tx.ExecContext(ctx, `INSERT INTO t (n) VALUES (?)`, i)
				return err
			})
		}()
	}
	waitQueued(t, st, n)
	close(release)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	var rows int
	if err := st.R.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	commits, items := b.Stats()
	if failed != 1 || rows != n {
		t.Fatalf("%d failed, %d rows; want exactly the failing item refused and the other %d stored", failed, rows, n)
	}
	if commits-c0 != 2 || items-i0 != n+1 {
		t.Fatalf("%d writes took %d commits; want 2 (the held one, then the %d queued behind it together)", items-i0, commits-c0, n)
	}
}

// waitQueued waits, for at most five seconds, until n writes wait in the batcher's queue.
func waitQueued(t *testing.T, st *sqlstore.Store, n int) {
	deadline := time.Now().Add(5 * time.Second)
	for st.Batcher().Queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes were queued", st.Batcher().Queued(), n)
		}
		runtime.Gosched()
	}
}
