package changefeed

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// fakeFeed holds the committed changes; tests commit them in any order.
type fakeFeed struct{ committed []store.Change }

func (f *fakeFeed) commit(seq int64) {
	f.committed = append(f.committed, store.Change{Seq: seq, Kind: store.ChangeUser, Key: "k"})
	slices.SortFunc(f.committed, func(a, b store.Change) int { return int(a.Seq - b.Seq) })
}

func (f *fakeFeed) Changes(_ context.Context, after int64, limit int) ([]store.Change, error) {
	var out []store.Change
	for _, c := range f.committed {
		if c.Seq > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeFeed) LastChangeSeq(context.Context) (int64, error) {
	if len(f.committed) == 0 {
		return 0, nil
	}
	return f.committed[len(f.committed)-1].Seq, nil
}

func watch(t *testing.T, f *fakeFeed) (*Watcher, *[]int64, *time.Time) {
	w := New(f, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	clock := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return clock }
	var seen []int64
	w.Subscribe(func(c store.Change) {
		if c.Kind != store.ChangeResync {
			seen = append(seen, c.Seq)
		}
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w, &seen, &clock
}

// TestWatcherNeverSkipsALateCommit: number 2 commits after 3 was read. The watcher delivers 3, keeps
// waiting for 2, and delivers it when it appears; nothing is delivered twice.
func TestWatcherNeverSkipsALateCommit(t *testing.T) {
	f := &fakeFeed{}
	w, seen, _ := watch(t, f)
	ctx := context.Background()
	f.commit(1)
	f.commit(3)
	w.Poll(ctx)
	if !slices.Equal(*seen, []int64{1, 3}) || w.Gaps() != 1 {
		t.Fatalf("first poll: %v, %d gaps", *seen, w.Gaps())
	}
	f.commit(4)
	w.Poll(ctx)
	f.commit(2) // the slow transaction commits at last
	w.Poll(ctx)
	if !slices.Equal(*seen, []int64{1, 3, 4, 2}) || w.Gaps() != 0 {
		t.Fatalf("the late change must be delivered once: %v, %d gaps", *seen, w.Gaps())
	}
	w.Poll(ctx)
	if len(*seen) != 4 {
		t.Fatalf("nothing is delivered twice: %v", *seen)
	}
}

// TestWatcherForgetsGapsAfterTheHorizonAndResyncs: a number that never appears (a rolled-back
// transaction) stops being re-read after GapHorizon, and every ResyncInterval subscribers are told
// to drop everything.
func TestWatcherForgetsGapsAfterTheHorizonAndResyncs(t *testing.T) {
	f := &fakeFeed{}
	w, _, clock := watch(t, f)
	resyncs := 0
	w.Subscribe(func(c store.Change) {
		if c.Kind == store.ChangeResync {
			resyncs++
		}
	})
	ctx := context.Background()
	f.commit(2)
	w.Poll(ctx)
	if w.Gaps() != 1 {
		t.Fatalf("gaps: %d", w.Gaps())
	}
	*clock = clock.Add(w.GapHorizon + time.Second)
	w.Poll(ctx)
	if w.Gaps() != 0 {
		t.Fatalf("a gap older than the horizon is still awaited")
	}
	if resyncs != 0 {
		t.Fatalf("resync before its interval")
	}
	*clock = clock.Add(w.ResyncInterval)
	w.Poll(ctx)
	if resyncs != 1 {
		t.Fatalf("no resync after the interval: %d", resyncs)
	}
}

// TestWatcherUnderRandomCommitOrder: many changes numbered in one order and committed in another,
// polled in between: every change is delivered exactly once.
func TestWatcherUnderRandomCommitOrder(t *testing.T) {
	f := &fakeFeed{}
	w, seen, _ := watch(t, f)
	ctx := context.Background()
	order := []int64{}
	for i := int64(1); i <= 300; i++ {
		order = append(order, i)
	}
	// A fixed shuffle: swap neighbours in blocks, and hold a few numbers back much longer.
	for i := 0; i+1 < len(order); i += 3 {
		order[i], order[i+1] = order[i+1], order[i]
	}
	late := []int64{order[10], order[100], order[200]}
	order = slices.DeleteFunc(order, func(n int64) bool { return slices.Contains(late, n) })
	for i, n := range order {
		f.commit(n)
		if i%7 == 0 {
			w.Poll(ctx)
		}
	}
	w.Poll(ctx)
	for _, n := range late {
		f.commit(n)
		w.Poll(ctx)
	}
	got := slices.Clone(*seen)
	slices.Sort(got)
	for i, n := range got {
		if n != int64(i+1) || len(got) != 300 {
			t.Fatalf("delivered %d changes, want 1..300 exactly once; at %d got %d", len(got), i, n)
		}
	}
	if len(got) != 300 {
		t.Fatalf("delivered %d changes, want 300", len(got))
	}
}

// TestWatcherResyncsOnAJumpTooWideToTrack: a jump of more than maxGaps numbers (a restored
// database, a reset sequence) is not tracked number by number; every cache is told to resync.
func TestWatcherResyncsOnAJumpTooWideToTrack(t *testing.T) {
	f := &fakeFeed{}
	w, seen, _ := watch(t, f)
	resyncs := 0
	w.Subscribe(func(c store.Change) {
		if c.Kind == store.ChangeResync {
			resyncs++
		}
	})
	f.commit(maxGaps + 50)
	w.Poll(context.Background())
	if w.Gaps() != 0 || resyncs != 1 || len(*seen) != 1 {
		t.Fatalf("gaps %d, resyncs %d, delivered %v", w.Gaps(), resyncs, *seen)
	}
}
