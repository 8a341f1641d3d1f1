package logout_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/logout"
	"github.com/signet-id/signet/internal/store"
)

// fakes: one session signed in to the clients of clients; every signature is "token".
type clients map[string]*store.Client

func (c clients) SessionClients(context.Context, string) ([]string, error) {
	var ids []string
	for id := range c {
		ids = append(ids, id)
	}
	return ids, nil
}

func (c clients) Client(_ context.Context, id string) (*store.Client, error) {
	if cl, ok := c[id]; ok {
		return cl, nil
	}
	return nil, store.ErrNotFound
}

type signer struct{}

func (signer) Sign(string, string, any) (string, error) { return "token", nil }

type auditor struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *auditor) Record(_ context.Context, events ...audit.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, events...)
	return nil
}

func notifier(c clients, a *auditor) *logout.Notifier {
	return &logout.Notifier{Issuer: "https://id.example", Alg: "ES256", Store: c, Clients: c, Keys: signer{}, Audit: a,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestOnlyHTTPURIsAreCalled(t *testing.T) {
	called := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called <- r.URL.String() }))
	defer srv.Close()
	c := clients{}
	for i, uri := range []string{"file:///etc/passwd", "javascript:alert(1)", "ftp://" + srv.Listener.Addr().String() + "/", "//" + srv.Listener.Addr().String() + "/",
		"http://user:pw@" + srv.Listener.Addr().String() + "/", "relative/path"} {
		id := string(rune('a' + i))
		c[id] = &store.Client{ID: id, BackchannelLogoutURI: uri}
	}
	a := &auditor{}
	n := notifier(c, a)
	n.SessionEnded(context.Background(), &store.BrowserSession{ID: "bs-1", UserID: "u-1"})
	n.Close() // waits for every delivery to finish
	if len(called) != 0 {
		t.Fatalf("a refused URI was called: %s", <-called)
	}
	if len(a.events) != len(c) {
		t.Fatalf("%d outcomes audited, want %d: %+v", len(a.events), len(c), a.events)
	}
	for _, e := range a.events {
		if e.Type != audit.TypeLogoutFailed || e.Subject != "u-1" || !strings.Contains(e.Details.(map[string]any)["reason"].(string), "URI") {
			t.Errorf("outcome %+v: want logout.failed naming the URI as the reason", e)
		}
	}
}

func TestCloseGivesUpPendingNoticesAndAuditsThem(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // the server notices a hang-up only once the body is read
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done() // answers only once Signet hangs up
	}))
	defer srv.Close()
	a := &auditor{}
	n := notifier(clients{"mail": {ID: "mail", BackchannelLogoutURI: srv.URL}}, a)
	n.SessionEnded(context.Background(), &store.BrowserSession{ID: "bs-1", UserID: "u-1"})
	<-arrived
	n.Close()
	if len(a.events) != 1 || a.events[0].Type != audit.TypeLogoutFailed || a.events[0].Client != "mail" ||
		!strings.Contains(a.events[0].Details.(map[string]any)["reason"].(string), "server stopped") {
		t.Fatalf("outcomes %+v: want one logout.failed for mail, the server having stopped", a.events)
	}
	n.SessionEnded(context.Background(), &store.BrowserSession{ID: "bs-2", UserID: "u-1"}) // after Close: nothing starts
	if len(a.events) != 1 {
		t.Fatalf("a session ended after Close was handled: %+v", a.events)
	}
}

// TestCloseLetsPendingNoticesFinish: a CLI command (user lock, user delete) ends sessions and
// exits at once; Close gives the notices it started their grace to arrive.
func TestCloseLetsPendingNoticesFinish(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		<-release
		got <- r.PostForm.Get("logout_token")
	}))
	defer srv.Close()
	a := &auditor{}
	n := notifier(clients{"mail": {ID: "mail", BackchannelLogoutURI: srv.URL}}, a)
	n.Grace = time.Minute
	n.SessionEnded(context.Background(), &store.BrowserSession{ID: "bs-1", UserID: "u-1"})
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	close(release)
	<-closed
	if token := <-got; token == "" {
		t.Fatal("the notice arrived without a logout_token")
	}
	if len(a.events) != 1 || a.events[0].Type != audit.TypeLogoutDelivered {
		t.Fatalf("outcomes %+v: want the notice delivered before Close returned", a.events)
	}
}
