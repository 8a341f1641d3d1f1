package sqlstore_test

// Attacks on the group-commit writer (writer.go): a caller that gives up mid-batch, and a batch
// full of failing writes.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

var attackKey = []byte("0123456789abcdef0123456789abcdef")

// gate wraps a real Committer: it can hold the writer inside Commit (entered is signalled, then it
// waits for release), and counts transactions and the statements they ran.
type gate struct {
	inner   sqlstore.Committer
	mu      sync.Mutex
	release chan struct{} // set: the next Commit signals entered and waits for it to close
	entered chan struct{}

	txns, stmts atomic.Int64
}

func (g *gate) Commit(ctx context.Context, steps []sqlstore.Step) (int, error) {
	g.mu.Lock()
	rel := g.release
	g.release = nil
	g.mu.Unlock()
	if rel != nil {
		g.entered <- struct{}{}
		<-rel
	}
	failed, err := g.inner.Commit(ctx, steps)
	g.txns.Add(1)
	if failed >= 0 {
		g.stmts.Add(int64(failed + 1))
	} else {
		g.stmts.Add(int64(len(steps)))
	}
	return failed, err
}

func (g *gate) Close() error { return g.inner.Close() }

// holdNext makes the next batch wait inside Commit until the returned channel is closed.
func (g *gate) holdNext() chan struct{} {
	rel := make(chan struct{})
	g.mu.Lock()
	g.release = rel
	g.mu.Unlock()
	return rel
}

func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never started the batch")
	}
}

// gatedStore opens a migrated SQLite database and a second store over its pools whose writer runs
// through a gate, so a test can hold a batch inside its transaction.
func gatedStore(t *testing.T) (*sqlstore.Store, *gate) {
	t.Helper()
	ctx := context.Background()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{entered: make(chan struct{}, 1)}
	st := sqlstore.New(base.W, base.R, sqlstore.Dialect{
		Name:      "sqlite",
		IsUnique:  func(err error) bool { return err != nil && strings.Contains(err.Error(), "UNIQUE") },
		Committer: func() sqlstore.Committer { g.inner = sqlstore.NewSQLCommitter(base.W); return g },
	}, sqlstore.WithAuditKey(attackKey), sqlstore.WithAuditChain(""))
	t.Cleanup(func() {
		st.Batcher().Close()
		base.Close()
	})
	if _, err := st.W.ExecContext(ctx, `CREATE TABLE t (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return st, g
}

func insertRow(n int) *sqlstore.Write {
	return &sqlstore.Write{What: fmt.Sprintf("row %d", n), Stmts: []sqlstore.Stmt{{Query: `INSERT INTO t (n) VALUES (?)`, Args: []any{n}}}}
}

func rowExists(t *testing.T, st *sqlstore.Store, n int) bool {
	t.Helper()
	var c int
	if err := st.R.QueryRow(`SELECT count(*) FROM t WHERE n = ?`, n).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c == 1
}

// TestAttackCanceledCallerGetsErrorButWriteCommits (fixed: Do waits for the batch once its write
// is queued, so it answers with the truth): Write's contract is "All of
// it is durable when Batcher.Do returns nil; none of it when Do returns an error", and audit.Log.Record
// says "An error means nothing was recorded, and whatever the events describe must not happen". A
// caller whose context ends while its write is inside the batch transaction gets ctx.Err() from Do,
// yet the write commits. A client that disconnects (or a request deadline) mid-commit thus gets an
// error for a refresh-token rotation that happened (its old token is now "used": the retry looks
// like reuse), or for an audit event that is in the log although the caller did not act.
//
// Smallest fix: once the write is queued, Do waits for the writer's answer (bounded by
// commitDeadline) instead of returning on ctx.Done(); the writer already answers ctx.Err() for
// items whose context ended before their attempt, without running them.
func TestAttackCanceledCallerGetsErrorButWriteCommits(t *testing.T) {
	st, g := gatedStore(t)
	b := st.Batcher()

	rel := g.holdNext()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Do(ctx, insertRow(1)) }()
	g.waitEntered(t)
	cancel()
	close(rel) // Do answers the truth once the batch is settled
	var doErr error
	select {
	case doErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return after its batch was settled")
	}
	// The writer is serial: once a later write is answered, the held batch is settled.
	if err := b.Do(context.Background(), insertRow(2)); err != nil {
		t.Fatal(err)
	}
	if doErr != nil && rowExists(t, st, 1) {
		t.Errorf("Batcher.Do returned %v, but the write committed: a failed write must leave nothing behind", doErr)
	}

	// The same through the audit log: Record fails, yet the event is in the log (and verifies).
	rel = g.holdNext()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	l := audit.New(st)
	go func() {
		done <- l.Record(ctx2, audit.Event{Type: audit.TypeExchangeAllowed, Actor: "sam", Subject: "dana"})
	}()
	g.waitEntered(t)
	cancel2()
	close(rel)
	recErr := <-done
	if err := b.Do(context.Background(), insertRow(3)); err != nil {
		t.Fatal(err)
	}
	events, err := st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if recErr != nil && len(events) > 0 {
		t.Errorf("audit.Log.Record returned %v (\"nothing was recorded\"), but the log holds %d event(s): %s by %s", recErr, len(events), events[0].Type, events[0].Actor)
	}
}

// TestAttackFailingWritesDoNotAmplify (held): a batch of 256 writes where every other one is a
// duplicate key (a replayed assertion jti, a reused refresh token) and one where all are. The
// writer settles a failing write and re-runs only the writes before it, so the work stays linear:
// at most two transactions per failing write and every statement runs at most twice. (The price:
// interleaved failures split the batch, one commit per good write instead of one for all.)
func TestAttackFailingWritesDoNotAmplify(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(i int) bool
	}{
		{"every other write fails", func(i int) bool { return i%2 == 1 }},
		{"every write fails", func(i int) bool { return true }},
		{"the last write fails", func(i int) bool { return i == 255 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, g := gatedStore(t)
			b := st.Batcher()
			ctx := context.Background()
			if _, err := st.W.ExecContext(ctx, `INSERT INTO t (n) VALUES (-1)`); err != nil {
				t.Fatal(err)
			}
			rel := g.holdNext()
			held := make(chan error, 1)
			go func() { held <- b.Do(ctx, insertRow(100000)) }()
			g.waitEntered(t)
			g.txns.Store(0)
			g.stmts.Store(0)
			const n = 256
			errs := make([]error, n)
			var wg sync.WaitGroup
			nbad := 0
			for i := range n {
				w := insertRow(i)
				if tc.bad(i) {
					w, nbad = insertRow(-1), nbad+1
				}
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = b.Do(ctx, w) }()
			}
			waitQueued(t, st, n)
			start := time.Now()
			close(rel)
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			took := time.Since(start)
			for i, err := range errs {
				if tc.bad(i) != errors.Is(err, store.ErrConflict) || (!tc.bad(i) && err != nil) {
					t.Fatalf("write %d (bad %v): %v", i, tc.bad(i), err)
				}
				if !tc.bad(i) && !rowExists(t, st, i) {
					t.Fatalf("write %d acknowledged but missing", i)
				}
			}
			txns, stmts := g.txns.Load()-1, g.stmts.Load()-1 // minus the held write's
			t.Logf("%d writes, %d failing: %d transactions, %d statements, %v", n, nbad, txns, stmts, took)
			if txns > int64(2*nbad+2) || stmts > int64(2*n+nbad) {
				t.Errorf("%d failing writes of %d cost %d transactions and %d statements: more than linear", nbad, n, txns, stmts)
			}
		})
	}
}

// TestAttackWriteAfterCloseIsLost (fixed; the promise "no write is lost" was broken): Do's first select has two
// ready cases once the store is closing — the queue has room and done is closed — and Go picks one
// at random. A write queued after the writer drained the queue is never run and never answered:
// its caller waits until its context ends (forever with context.Background(), e.g. a background
// job or a request still in flight during shutdown), instead of getting ErrClosed at once.
//
// Smallest fix: in Do, check done before (and, for the send, with priority over) the queue —
// `select { case <-b.done: return ErrClosed; default: }` first, and have run() answer ErrClosed to
// anything still queued after it stops (drain again after closing stopped, or close reqs under a
// lock held by Do's send).
func TestAttackWriteAfterCloseIsLost(t *testing.T) {
	st, _ := gatedStore(t)
	b := st.Batcher()
	if err := b.Do(context.Background(), insertRow(1)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	lost := 0
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := b.Do(ctx, insertRow(10+i))
		cancel()
		switch {
		case errors.Is(err, sqlstore.ErrClosed):
		case errors.Is(err, context.DeadlineExceeded):
			lost++
		default:
			t.Fatalf("write %d after Close: %v", i, err)
		}
		if lost > 0 {
			break
		}
	}
	if lost > 0 {
		t.Errorf("a write submitted after Close was queued and never answered (its caller waited for its deadline), want ErrClosed")
	}
}

// TestAttackTwoSQLiteProcessesShareChainEmpty (held, measured): on SQLite the server and a CLI
// process both append to chain "" through their own writers (each with its head in memory). Under
// concurrent load the chain does not fork and verifies; the log reports how many audited writes
// gave up after finding the head moved five times in a row.
func TestAttackTwoSQLiteProcessesShareChainEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	ctx := context.Background()
	var stores []*sqlstore.Store
	for range 2 {
		s, err := sqlite.Open(ctx, path, sqlstore.WithAuditKey(attackKey))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		l := audit.New(stores[w%2])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := l.Record(ctx, audit.Event{Type: audit.TypeTokenIssued, Details: map[string]int{"w": w, "i": i}}); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	res, err := audit.Verify(ctx, stores[0], attackKey)
	if err != nil || !res.Intact || int64(res.Events) != 160-failed.Load() {
		t.Fatalf("chain \"\" written by two processes: %+v %v (%d failed)", res, err, failed.Load())
	}
	t.Logf("%d of 160 audited writes failed", failed.Load())
}
