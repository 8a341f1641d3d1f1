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

// Watcher polls the change feed and calls subscribers for every new change, in order.
type Watcher struct {
	feed     Feed
	interval time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	subs []func(store.Change)
	seq  int64
	wake chan struct{}
}

// New returns a watcher that polls every interval (and whenever Wake is called).
func New(feed Feed, interval time.Duration, log *slog.Logger) *Watcher {
	return &Watcher{feed: feed, interval: interval, log: log, wake: make(chan struct{}, 1)}
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
	w.seq = seq
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

// Poll delivers every change after the last one seen.
func (w *Watcher) Poll(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		changes, err := w.feed.Changes(ctx, w.seq, 500)
		if err != nil {
			return err
		}
		for _, c := range changes {
			for _, fn := range w.subs {
				fn(c)
			}
			w.seq = c.Seq
		}
		if len(changes) < 500 {
			return nil
		}
	}
}
