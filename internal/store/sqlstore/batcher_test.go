package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

// TestConcurrentWritesShareOneCommit: writes queued while a commit is under way are committed
// together — one transaction, one fsync — each caller gets its own result, and a write that fails
// (a duplicate key) fails alone: the others are committed without it.
func TestConcurrentWritesShareOneCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.W.ExecContext(ctx, `CREATE TABLE t (n INTEGER PRIMARY KEY); INSERT INTO t (n) VALUES (1000)`); err != nil {
		t.Fatal(err)
	}
	b := st.Batcher()
	insert := func(n int) *sqlstore.Write {
		return &sqlstore.Write{What: fmt.Sprintf("row %d", n), Stmts: []sqlstore.Stmt{{Query: `INSERT INTO t (n) VALUES (?)`, Args: []any{n}}}}
	}
	c0, i0 := b.Stats()

	// Another connection holds SQLite's write lock, so the first write waits in its commit while the
	// others queue behind it.
	holder, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const n = 63
	errs := make([]error, n+1)
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = b.Do(ctx, insert(0)) }()
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 7 {
				errs[i] = b.Do(ctx, insert(1000)) // a duplicate: fails alone
				return
			}
			errs[i] = b.Do(ctx, insert(i))
		}()
	}
	waitQueued(t, st, n) // all but the one the writer holds (whichever came first)
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 7 && !errors.Is(err, store.ErrConflict):
			t.Fatalf("the duplicate write: %v, want ErrConflict", err)
		case i != 7 && err != nil:
			t.Fatalf("write %d: %v", i, err)
		}
	}
	var rows int
	if err := st.R.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	commits, items := b.Stats()
	if rows != n+1 {
		t.Fatalf("%d rows; want the %d good writes stored next to the first row", rows, n)
	}
	// The held write commits alone; the queued writes take one commit, or two when the duplicate
	// was not first in its batch (the writes before it are run again without it).
	if items-i0 != n || commits-c0 < 1 || commits-c0 > 3 {
		t.Fatalf("%d writes took %d commits; want all %d good writes in at most 3", items-i0, commits-c0, n)
	}
}

// waitQueued waits, for at most five seconds, until n writes wait in the batcher's queue.
func waitQueued(t *testing.T, st *sqlstore.Store, n int) {
	deadline := time.Now().Add(5 * time.Second)
	for st.Batcher().Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", st.Batcher().Queued(), n)
		}
		runtime.Gosched()
	}
}
