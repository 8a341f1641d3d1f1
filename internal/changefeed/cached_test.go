package changefeed

import (
	"context"
	"testing"
)

// TestCachedNeverKeepsALoadThatRacedAnInvalidation is the lost-invalidation race: a load reads the
// old value, the value changes and the invalidation arrives, then the load finishes. The stale
// value must not be kept; the next Get must load again and see the new value.
func TestCachedNeverKeepsALoadThatRacedAnInvalidation(t *testing.T) {
	var c Cached[string]
	ctx := context.Background()
	current := "off"
	got, err := c.Get(ctx, func(context.Context) (string, error) {
		v := current // the load has read the store...
		current = "on"
		c.Invalidate() // ...when the change lands and the feed invalidates
		return v, nil
	})
	if err != nil || got != "off" {
		t.Fatalf("the racing load itself returns what it read: %q %v", got, err)
	}
	loads := 0
	got, _ = c.Get(ctx, func(context.Context) (string, error) { loads++; return current, nil })
	if got != "on" || loads != 1 {
		t.Fatalf("after a raced invalidation Get must load again: got %q after %d loads", got, loads)
	}
	got, _ = c.Get(ctx, func(context.Context) (string, error) { loads++; return "never", nil })
	if got != "on" || loads != 1 {
		t.Fatalf("an undisturbed load is kept: got %q after %d loads", got, loads)
	}
	c.Invalidate()
	got, _ = c.Get(ctx, func(context.Context) (string, error) { loads++; return "again", nil })
	if got != "again" || loads != 2 {
		t.Fatalf("Invalidate drops the value: got %q after %d loads", got, loads)
	}
}
