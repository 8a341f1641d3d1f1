package notify_test

// Attacks on the webhook deliverer's cursors: events that commit late in one chain while other
// chains move on, two replicas sharing one cursor and overwriting each other's progress, and a
// receiver that fails now and then.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/notify"
	"github.com/signet-id/signet/internal/store"
)

// chainsStore is an in-memory notify.Store whose events become visible (commit) when the test says.
type chainsStore struct {
	mu       sync.Mutex
	events   []store.AuditEvent // visible ones
	settings map[string]string
	reads    int
}

func (s *chainsStore) commit(e store.AuditEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *chainsStore) ListAudit(_ context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	var out []store.AuditEvent
	for _, e := range s.events {
		if f.Type != "" && e.Type != f.Type {
			continue
		}
		if f.InChain != nil && (e.Chain != f.InChain.Chain || e.Position <= f.InChain.Position) {
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Position < out[j].Position })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (s *chainsStore) AuditChains(context.Context, bool) ([]store.AuditChain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []store.AuditChain
	for _, e := range s.events {
		if !seen[e.Chain] {
			seen[e.Chain] = true
			out = append(out, store.AuditChain{ID: e.Chain, Registered: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *chainsStore) GetSetting(_ context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.settings[name]
	if !ok {
		return "", store.ErrNotFound
	}
	return v, nil
}

func (s *chainsStore) PutSetting(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings[name] = value
	return nil
}

func (s *chainsStore) GetUser(context.Context, string) (*store.User, error) {
	return nil, store.ErrNotFound
}

type nopSigner struct{}

func (nopSigner) Sign(_, _ string, claims any) (string, error) {
	b, err := json.Marshal(claims)
	return string(b), err
}

func allowed(chain string, pos, seq int64, notifyIt bool) store.AuditEvent {
	d, _ := json.Marshal(exchange.Allowed{Mode: "impersonation", Session: fmt.Sprintf("xs-%s-%d", chain, pos), NotifySubject: notifyIt})
	return store.AuditEvent{Seq: seq, Chain: chain, Position: pos, At: time.Now(), Type: "exchange.allowed", Subject: "dana", Details: d}
}

// TestAttackCursorsNeverSkip (held): three chains whose events commit out of sequence order (chain
// b's position 2 after everything else, chain c's first event last), two deliverers for one URL
// sharing (and overwriting) one cursor setting, and a receiver that refuses every third request
// with a 503: every notify-flagged event is delivered at least once.
func TestAttackCursorsNeverSkip(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var set struct {
			Events map[string]notify.Session `json:"events"`
		}
		if err := json.Unmarshal(b, &set); err != nil {
			t.Errorf("body: %v", err)
		}
		got[set.Events[notify.EventURI].Session]++
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	st := &chainsStore{settings: map[string]string{}}
	want := map[string]bool{}
	seq := int64(0)
	add := func(chain string, pos int64, notifyIt bool) {
		seq++
		e := allowed(chain, pos, seq, notifyIt)
		if notifyIt {
			want[fmt.Sprintf("xs-%s-%d", chain, pos)] = true
		}
		st.commit(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	hooks := []*notify.Webhook{}
	for range 2 {
		w := &notify.Webhook{URL: srv.URL, Issuer: "https://issuer", Alg: "ES256", Store: st, Keys: nopSigner{},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Poll: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
		hooks = append(hooks, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}
	wake := func() {
		for _, w := range hooks {
			w.Wake()
		}
	}
	// Chain a moves ahead while chain b's position 2 and chain c are still in flight.
	add("a", 1, true)
	add("b", 1, true)
	wake()
	for p := int64(2); p <= 30; p++ {
		add("a", p, p%2 == 0)
		wake()
	}
	add("b", 2, true) // commits last in its chain's order, after a's later events
	add("c", 1, true) // a chain that appears late
	for p := int64(3); p <= 10; p++ {
		add("b", p, true)
		add("c", p-1, true)
		wake()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		missing := []string{}
		for s := range want {
			if got[s] == 0 {
				missing = append(missing, s)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("never delivered: %v", missing)
		}
		wake()
		time.Sleep(5 * time.Millisecond) // polling the receiver, bounded by the deadline
	}
	cancel()
	wg.Wait()
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	t.Logf("%d notifications delivered, %d duplicates", len(got), dups)
}

// TestAttackNullCursorPanics (fixed; was broken, robustness): the cursor setting is JSON read with
// json.Unmarshal into a map; the value `null` (a crafted or hand-edited setting, or the bare legacy
// setting notify_cursor) leaves the map nil, and the first delivered event's `cursors[c.ID] = …`
// panics in the deliverer's goroutine — which takes the whole server down, at every start.
//
// Smallest fix: in cursors(), `if cursors == nil { cursors = map[string]int64{} }` after Unmarshal
// (and reject negative positions).
func TestAttackNullCursorPanics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer srv.Close()
	st := &chainsStore{settings: map[string]string{notify.CursorSetting: "null"}}
	st.commit(allowed("a", 1, 1, true))
	w := &notify.Webhook{URL: srv.URL, Issuer: "https://issuer", Alg: "ES256", Store: st, Keys: nopSigner{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Poll: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var panicked any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		w.Run(ctx)
	}()
	// Wait until the deliverer stopped (panicked) or moved its cursor past the event, for at most 5 s.
	deadline := time.Now().Add(5 * time.Second)
	for stopped := false; !stopped; {
		select {
		case <-done:
			stopped = true
			continue
		default:
		}
		st.mu.Lock()
		_, moved := st.settings["notify_cursor:"+urlHash(srv.URL)]
		st.mu.Unlock()
		if moved || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond) // polling the fake store, bounded by the deadline
	}
	cancel()
	<-done
	if panicked != nil {
		t.Errorf("the deliverer panicked on the cursor setting `null`: %v", panicked)
	}
}

func urlHash(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:8])
}
