package changefeed

import (
	"context"
	"sync"
)

// Cached holds one value loaded from the store and dropped when the change feed reports it changed.
// A load that raced an invalidation is returned to its caller but never kept, so an invalidation is
// never lost (the read-then-swap race where a stale load lands after the invalidation that should
// have replaced it). Every cache fed by the change feed follows this one pattern.
type Cached[T any] struct {
	mu  sync.RWMutex
	gen uint64 // bumped by every invalidation
	ok  bool
	val T
}

// Get returns the cached value, loading it when there is none.
func (c *Cached[T]) Get(ctx context.Context, load func(context.Context) (T, error)) (T, error) {
	c.mu.RLock()
	ok, val, gen := c.ok, c.val, c.gen
	c.mu.RUnlock()
	if ok {
		return val, nil
	}
	val, err := load(ctx)
	if err != nil {
		return val, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.val, c.ok = val, true
	}
	c.mu.Unlock()
	return val, nil
}

// Invalidate drops the value; the next Get loads it again.
func (c *Cached[T]) Invalidate() {
	c.mu.Lock()
	c.gen++
	c.ok = false
	var zero T
	c.val = zero
	c.mu.Unlock()
}
