package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned for work submitted after Close.
var ErrClosed = errors.New("store is closed")

// Batcher commits concurrent small writes together (group commit): one writer goroutine takes
// everything queued, runs each item in one transaction, commits once and answers each caller
// with its own result. One fsync then serves many requests.
type Batcher struct {
	db   *sql.DB
	max  int
	reqs chan *batchItem

	closeOnce sync.Once
	done      chan struct{}
	stopped   chan struct{}

	commits, items atomic.Uint64 // transactions committed, and the writes they carried
}

// Queued returns how many writes wait for the writer.
func (b *Batcher) Queued() int { return len(b.reqs) }

// Stats returns how many transactions the batcher committed and how many writes they carried:
// items/commits is the average batch, the fsyncs saved.
func (b *Batcher) Stats() (commits, items uint64) { return b.commits.Load(), b.items.Load() }

type batchItem struct {
	ctx    context.Context
	fn     func(context.Context, *sql.Tx) error
	result chan error
}

// NewBatcher starts a batcher writing to db, at most max items per transaction.
func NewBatcher(db *sql.DB, max int) *Batcher {
	b := &Batcher{db: db, max: max, reqs: make(chan *batchItem, max*4), done: make(chan struct{}), stopped: make(chan struct{})}
	go b.run()
	return b
}

// Do runs fn in a shared transaction and returns fn's error, or the commit's.
func (b *Batcher) Do(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	it := &batchItem{ctx: ctx, fn: fn, result: make(chan error, 1)}
	select {
	case b.reqs <- it:
	case <-b.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.result:
		return err
	case <-ctx.Done():
		// The write may still commit; the caller only stops waiting.
		return ctx.Err()
	}
}

func (b *Batcher) run() {
	defer close(b.stopped)
	for {
		var first *batchItem
		select {
		case first = <-b.reqs:
		case <-b.done:
			b.drain()
			return
		}
		items := b.collect(first)
		b.commit(items)
	}
}

// linger is how long a batch that found others queued waits for more: under load it lets one
// commit serve many requests; a lone request never waits.
const linger = 200 * time.Microsecond

// collect takes first and everything already queued; when that is more than one request (there is
// concurrency), it waits up to linger for stragglers.
func (b *Batcher) collect(first *batchItem) []*batchItem {
	items := []*batchItem{first}
	for len(items) < b.max {
		select {
		case it := <-b.reqs:
			items = append(items, it)
			continue
		default:
		}
		break
	}
	if len(items) == 1 || len(items) >= b.max {
		return items
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(items) < b.max {
		select {
		case it := <-b.reqs:
			items = append(items, it)
		case <-t.C:
			return items
		}
	}
	return items
}

// drain answers what was queued when Close was called.
func (b *Batcher) drain() {
	for {
		select {
		case it := <-b.reqs:
			b.commit([]*batchItem{it})
		default:
			return
		}
	}
}

func (b *Batcher) commit(items []*batchItem) {
	tx, err := b.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, it := range items {
			it.result <- err
		}
		return
	}
	results := make([]error, len(items))
	for i, it := range items {
		if it.ctx.Err() != nil {
			results[i] = it.ctx.Err()
			continue
		}
		results[i] = b.runItem(tx, it)
	}
	err = tx.Commit()
	if err == nil {
		b.commits.Add(1)
		b.items.Add(uint64(len(items)))
	}
	if err != nil {
		for i, it := range items {
			if results[i] == nil {
				results[i] = err
			}
			it.result <- results[i]
		}
		return
	}
	for i, it := range items {
		it.result <- results[i]
	}
}

// runItem runs one caller's work inside a savepoint, so a failing item leaves nothing behind and
// does not spoil the shared transaction for the others (PostgreSQL aborts a transaction on any
// error unless it is rolled back to a savepoint).
func (b *Batcher) runItem(tx *sql.Tx, it *batchItem) error {
	ctx := context.Background()
	if _, err := tx.ExecContext(ctx, "SAVEPOINT batch_item"); err != nil {
		return err
	}
	if err := it.fn(ctx, tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT batch_item"); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT batch_item")
	return err
}

// Close stops accepting work, finishes what is queued and waits for the writer.
func (b *Batcher) Close() {
	b.closeOnce.Do(func() { close(b.done) })
	<-b.stopped
}
