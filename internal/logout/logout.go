// Package logout tells clients that a browser session ended (OpenID Connect Back-Channel Logout
// 1.0): each client the session signed in to that registered a back-channel logout URI receives a
// logout token, signed like its ID tokens, naming the user (sub) and the session (sid).
//
// Delivery is asynchronous, so that the user's sign-out never waits on a client, and in-process:
// each notice is tried a few times with backoff while the client fails (5xx, 408, 429, network
// errors; never after another 4xx), then given up, and every outcome is audited (logout.delivered,
// logout.failed). Notices still pending when the server stops are given up too (audited as such):
// it is at most a few attempts, not a durable queue. Tokens of the ended session are revoked
// whatever happens here; back-channel logout only lets clients end their own sessions sooner.
package logout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
)

// EventURI is the logout token's event (Back-Channel Logout §2.4).
const EventURI = "http://schemas.openid.net/event/backchannel-logout"

// TokenType is the logout token's JOSE typ (Back-Channel Logout §2.4, explicit typing).
const TokenType = "logout+jwt"

// TokenTTL is how long a logout token is valid: long enough for the client to check it, short
// enough that a captured one is soon useless.
const TokenTTL = 2 * time.Minute

// Store is what the notifier reads: the clients a session signed in to.
type Store interface {
	SessionClients(ctx context.Context, sessionID string) ([]string, error)
}

// Clients finds a client's registration (the directory).
type Clients interface {
	Client(ctx context.Context, id string) (*store.Client, error)
}

// Signer signs claims as a JWT with the given alg and typ (the issuer's key manager).
type Signer interface {
	Sign(alg, typ string, claims any) (string, error)
}

// Auditor records events (the audit log).
type Auditor interface {
	Record(ctx context.Context, events ...audit.Event) error
}

// Notifier delivers logout tokens. Set the fields, then call SessionEnded for each session that
// ends and Close when the server stops.
type Notifier struct {
	Issuer  string
	Alg     string // the default signing algorithm; a client's AccessTokenAlg wins, as for its ID tokens
	Store   Store
	Clients Clients
	Keys    Signer
	Audit   Auditor
	Log     *slog.Logger
	// HTTP sends the notices; nil: a 5 s timeout per request and no redirects followed.
	HTTP *http.Client
	// Attempts is how many times a notice is tried (0: 4); MinBackoff and MaxBackoff bound the
	// wait between attempts, doubling from MinBackoff (0: 1 s and 10 s).
	Attempts               int
	MinBackoff, MaxBackoff time.Duration
	// Concurrency caps requests in flight (0: 8); MaxPending caps notices waiting or being tried
	// (0: 10000), beyond which new ones are given up at once rather than held in memory.
	Concurrency, MaxPending int
	// Grace is how long Close lets pending notices finish before giving them up (0: none). A CLI
	// command that locks a user exits right after: it needs a moment for its notices.
	Grace time.Duration
	Now   func() time.Time

	once    sync.Once
	ctx     context.Context
	cancel  context.CancelFunc
	slots   chan struct{}
	wg      sync.WaitGroup
	pending atomic.Int64
	mu      sync.Mutex // orders SessionEnded's wg.Add before Close's wg.Wait
	closed  bool
}

func (n *Notifier) init() {
	n.once.Do(func() {
		n.ctx, n.cancel = context.WithCancel(context.Background())
		if n.HTTP == nil {
			n.HTTP = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		if n.Attempts <= 0 {
			n.Attempts = 4
		}
		if n.MinBackoff <= 0 {
			n.MinBackoff = time.Second
		}
		if n.MaxBackoff <= 0 {
			n.MaxBackoff = 10 * time.Second
		}
		if n.Concurrency <= 0 {
			n.Concurrency = 8
		}
		if n.MaxPending <= 0 {
			n.MaxPending = 10000
		}
		if n.Now == nil {
			n.Now = time.Now
		}
		n.slots = make(chan struct{}, n.Concurrency)
	})
}

// SessionEnded starts telling the session's clients that it ended and returns at once (it has the
// signature of signin.Handler.Logout). Only s.ID and s.UserID are read.
func (n *Notifier) SessionEnded(_ context.Context, s *store.BrowserSession) {
	n.init()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.Log.Warn("back-channel logout not sent: the server is stopping", "session", s.ID)
		return
	}
	sid, user := s.ID, s.UserID
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.notifySession(sid, user)
	}()
}

// Close gives up pending notices (each is audited as failed) and returns when none is running.
func (n *Notifier) Close() {
	n.init()
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	if n.Grace > 0 {
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		t := time.NewTimer(n.Grace)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	n.cancel()
	n.wg.Wait()
}

// notifySession finds the session's clients with a back-channel URI and starts a delivery to each.
func (n *Notifier) notifySession(sid, user string) {
	ids, err := n.Store.SessionClients(n.ctx, sid)
	if err != nil {
		n.failed(&notice{sid: sid, user: user}, 0, "the session's clients could not be read: "+err.Error())
		return
	}
	for _, id := range ids {
		c, err := n.Clients.Client(n.ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since: nobody to tell
		}
		if err != nil {
			n.failed(&notice{sid: sid, user: user, client: id}, 0, "the client's registration could not be read: "+err.Error())
			continue
		}
		if c.BackchannelLogoutURI == "" {
			continue
		}
		no := &notice{sid: sid, user: user, client: c.ID, uri: c.BackchannelLogoutURI, alg: n.Alg}
		if c.AccessTokenAlg != "" {
			no.alg = c.AccessTokenAlg
		}
		if n.pending.Add(1) > int64(n.MaxPending) {
			n.pending.Add(-1)
			n.failed(no, 0, "too many back-channel logouts pending")
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer n.pending.Add(-1)
			n.deliver(no)
		}()
	}
}

// notice is one logout token for one client.
type notice struct {
	sid, user, client, uri, alg string
	jti                         string
}

// claims are the logout token's (Back-Channel Logout §2.4); it never carries a nonce.
type claims struct {
	Issuer    string              `json:"iss"`
	Subject   string              `json:"sub"`
	Audience  []string            `json:"aud"`
	IssuedAt  int64               `json:"iat"`
	ExpiresAt int64               `json:"exp"`
	ID        string              `json:"jti"`
	SessionID string              `json:"sid"`
	Events    map[string]struct{} `json:"events"`
}

// Token signs the logout token for a notice issued at now.
func (n *Notifier) token(no *notice, now time.Time) (string, error) {
	return n.Keys.Sign(no.alg, TokenType, claims{
		Issuer: n.Issuer, Subject: no.user, Audience: []string{no.client}, IssuedAt: now.Unix(), ExpiresAt: now.Add(TokenTTL).Unix(),
		ID: no.jti, SessionID: no.sid, Events: map[string]struct{}{EventURI: {}},
	})
}

// deliver tries a notice until it is accepted, refused for good, out of attempts, or the notifier
// is closed.
func (n *Notifier) deliver(no *notice) {
	if reason := checkURI(no.uri); reason != "" {
		n.failed(no, 0, reason)
		return
	}
	no.jti = "lo-" + secrets.NewSortableID(n.Now())
	backoff := n.MinBackoff
	for attempt := 1; ; attempt++ {
		status, retry, err := n.attempt(no)
		if err == nil {
			n.delivered(no, attempt, status)
			return
		}
		if !retry || attempt >= n.Attempts {
			n.failed(no, attempt, err.Error())
			return
		}
		n.Log.Warn("back-channel logout not accepted; will retry", "client", no.client, "session", no.sid, "attempt", attempt, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-n.ctx.Done():
			t.Stop()
			n.failed(no, attempt, "the server stopped before the client accepted it (last error: "+err.Error()+")")
			return
		case <-t.C:
		}
		backoff = min(2*backoff, n.MaxBackoff)
	}
}

// attempt sends the notice once. retry tells whether a failure may pass (the client's fault is
// temporary) or will not (it refused this token).
func (n *Notifier) attempt(no *notice) (status int, retry bool, err error) {
	select {
	case n.slots <- struct{}{}:
		defer func() { <-n.slots }()
	case <-n.ctx.Done():
		return 0, false, errors.New("the server stopped before it was sent")
	}
	// A token per attempt: a retry after a long wait still arrives valid. The jti stays the same,
	// so a client that got an earlier attempt after all can tell it is the same notice.
	token, err := n.token(no, n.Now())
	if err != nil {
		return 0, false, fmt.Errorf("signing the logout token: %w", err)
	}
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, no.uri, strings.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := n.HTTP.Do(req)
	if err != nil && n.ctx.Err() != nil {
		return 0, false, errors.New("the server stopped before the client answered")
	}
	if err != nil {
		return 0, true, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return resp.StatusCode, false, nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		// §2.8: the client rejected this token; sending it again cannot help.
		return resp.StatusCode, false, fmt.Errorf("the client refused it: %s: %s", resp.Status, bytes.TrimSpace(msg))
	default:
		return resp.StatusCode, true, fmt.Errorf("the client answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
}

// checkURI refuses a back-channel URI that is not an absolute http(s) URL: the notice carries a
// signed statement about a user, and goes nowhere else.
func checkURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "the back-channel logout URI is not a URL"
	case u.Scheme != "https" && u.Scheme != "http":
		return "the back-channel logout URI is not an http or https URL"
	case u.Host == "" || u.User != nil || u.Fragment != "":
		return "the back-channel logout URI must name a host, and no user or fragment"
	}
	return ""
}

func (n *Notifier) delivered(no *notice, attempts, status int) {
	n.Log.Info("back-channel logout delivered", "client", no.client, "session", no.sid, "attempts", attempts)
	n.record(audit.Event{Type: audit.TypeLogoutDelivered, Subject: no.user, Client: no.client, Details: map[string]any{
		"session": no.sid, "jti": no.jti, "uri": no.uri, "attempts": attempts, "status": status}})
}

func (n *Notifier) failed(no *notice, attempts int, reason string) {
	n.Log.Error("back-channel logout not delivered; giving up", "client", no.client, "session", no.sid, "attempts", attempts, "reason", reason)
	n.record(audit.Event{Type: audit.TypeLogoutFailed, Subject: no.user, Client: no.client, Details: map[string]any{
		"session": no.sid, "jti": no.jti, "uri": no.uri, "attempts": attempts, "reason": reason}})
}

// record audits an outcome; it must outlive Close's cancellation (the store closes after Close).
func (n *Notifier) record(e audit.Event) {
	if err := n.Audit.Record(context.WithoutCancel(n.ctx), e); err != nil {
		n.Log.Error("could not audit a back-channel logout outcome", "err", err, "type", e.Type, "client", e.Client)
	}
}
