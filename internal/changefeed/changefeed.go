// Package changefeed follows the store's change feed and tells in-process caches which rows changed,
// so every replica sharing one database drops stale entries within a bounded delay (the poll
// interval, or at once where the backend pushes notifications). It owns no cache itself.
package changefeed

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Feed is the part of the store the watcher reads.
type Feed interface {
	Changes(ctx context.Context, afterSeq int64, limit int) ([]store.Change, error)
	LastChangeSeq(ctx context.Context) (int64, error)
}

// Watcher polls the change feed and calls subscribers for every new change.
//
// Sequence numbers are taken when a change is written, not when its transaction commits, so a
// change can become visible after a later-numbered one was read (PostgreSQL, concurrent writers).
// The watcher therefore never trusts a gap: every missing number below the highest seen is read
// again on every poll until it appears or GapHorizon has passed (rolled-back transactions leave
// gaps for good). Every ResyncInterval subscribers get a store.ChangeResync and drop everything,
// which bounds the damage of anything that still slipped through.
type Watcher struct {
	feed     Feed
	interval time.Duration
	log      *slog.Logger

	// GapHorizon is how long a missing sequence number is waited for; ResyncInterval how often
	// every cache is dropped (0: never). Set them before Run.
	GapHorizon     time.Duration
	ResyncInterval time.Duration
	now            func() time.Time

	mu         sync.Mutex
	subs       []func(store.Change)
	seq        int64               // highest sequence number delivered
	gaps       map[int64]time.Time // missing numbers below seq, with when they were first missed
	lastResync time.Time
	wake       chan struct{}
}

// maxGaps bounds how many missing numbers the watcher waits for at once.
const maxGaps = 10_000

// Defaults for Watcher.GapHorizon and Watcher.ResyncInterval.
const (
	DefaultGapHorizon     = 2 * time.Minute
	DefaultResyncInterval = 10 * time.Minute
)

// New returns a watcher that polls every interval (and whenever Wake is called).
func New(feed Feed, interval time.Duration, log *slog.Logger) *Watcher {
	return &Watcher{feed: feed, interval: interval, log: log, wake: make(chan struct{}, 1), GapHorizon: DefaultGapHorizon,
		ResyncInterval: DefaultResyncInterval, now: time.Now, gaps: map[int64]time.Time{}}
}

// Subscribe registers fn for every change seen after Start. fn must be fast and must not block.
func (w *Watcher) Subscribe(fn func(store.Change)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs = append(w.subs, fn)
}

// Start records the current end of the feed, so only later changes are delivered; call it before
// loading caches so nothing that changes in between is missed.
func (w *Watcher) Start(ctx context.Context) error {
	seq, err := w.feed.LastChangeSeq(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.seq, w.lastResync = seq, w.now()
	w.mu.Unlock()
	return nil
}

// Wake asks for a poll now (push notifications call it).
func (w *Watcher) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run polls until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
		if err := w.Poll(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("change feed poll failed; caches may be stale until the next poll", "err", err)
		}
	}
}

// Poll delivers every change not delivered yet: those after the highest seen, and those that
// appeared in a gap below it.
func (w *Watcher) Poll(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if w.ResyncInterval > 0 && now.Sub(w.lastResync) >= w.ResyncInterval {
		w.lastResync = now
		w.deliver(store.Change{Kind: store.ChangeResync, At: now})
	}
	for n, since := range w.gaps {
		if now.Sub(since) > w.GapHorizon {
			delete(w.gaps, n) // a rolled-back transaction's number, most likely; the resync covers the rest
		}
	}
	from := w.seq
	for n := range w.gaps {
		from = min(from, n-1)
	}
	for {
		changes, err := w.feed.Changes(ctx, from, 500)
		if err != nil {
			return err
		}
		for _, c := range changes {
			from = c.Seq
			switch {
			case c.Seq > w.seq:
				if c.Seq-w.seq-1 > maxGaps {
					// Too many missing numbers to wait for one by one (a sequence reset or a
					// restored database): drop every cache instead.
					w.deliver(store.Change{Kind: store.ChangeResync, At: now})
				} else {
					for n := w.seq + 1; n < c.Seq; n++ {
						w.gaps[n] = now
					}
				}
				w.seq = c.Seq
			case !w.hasGap(c.Seq):
				continue // delivered before
			default:
				delete(w.gaps, c.Seq)
			}
			w.deliver(c)
		}
		if len(changes) < 500 {
			return nil
		}
	}
}

func (w *Watcher) hasGap(n int64) bool {
	_, ok := w.gaps[n]
	return ok
}

func (w *Watcher) deliver(c store.Change) {
	for _, fn := range w.subs {
		fn(c)
	}
}

// Gaps reports how many missing sequence numbers the watcher is still waiting for.
func (w *Watcher) Gaps() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.gaps)
}
