// Package notify tells the people acted upon: for exchange rules with notify_subject, each new
// impersonation or delegation session is pushed to the operator's webhook as a Security Event Token
// (RFC 8417) signed with the issuer's key, delivered per RFC 8935 (push). Receivers verify it with
// the issuer's JWKS and then reach the user (mail, chat, the account page).
//
// The audit log is the outbox: the event that allowed the exchange is durable before the token
// exists, and it carries the notify flag. The deliverer tails the log after a cursor kept in the
// store's settings and advances it only past delivered events, so a restart or an unreachable
// receiver delays notifications but never loses them (at-least-once; the SET's jti, derived from
// the audit sequence number, lets receivers drop duplicates).
package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
)

// CursorSetting holds, for one destination, the position of the last audit event handled in each
// audit chain, as a JSON object {"chain": position}: CursorSetting + ":" + a hash of the URL.
// Within a chain events commit in order, so a position is a safe cursor; across chains (one per
// replica) they do not, which is why there is one per chain. Replicas sending to the same URL share
// it; a replica configured with another URL (a wrong one, say) has its own and never moves theirs.
// The bare CursorSetting is the single cursor of earlier versions (a sequence number, which is the
// position in chain ""), read once as a starting point; a number alone is read the same way.
const CursorSetting = "notify_cursor"

func (w *Webhook) cursorSetting() string {
	h := sha256.Sum256([]byte(w.URL))
	return CursorSetting + ":" + hex.EncodeToString(h[:8])
}

// EventURI identifies Signet's session-opened event in a SET's "events" claim.
const EventURI = "urn:signet:event:exchange-session-opened"

// SETType is the JOSE typ of a Security Event Token (RFC 8417 §2.3).
const SETType = "secevent+jwt"

// Store is what the deliverer reads and writes.
type Store interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	AuditChains(ctx context.Context) ([]store.AuditChain, error)
	GetSetting(ctx context.Context, name string) (string, error)
	PutSetting(ctx context.Context, name, value string) error
	GetUser(ctx context.Context, id string) (*store.User, error)
}

// Signer signs claims as a JWT with the given alg and typ (the issuer's key manager).
type Signer interface {
	Sign(alg, typ string, claims any) (string, error)
}

// Webhook delivers notifications to one URL.
type Webhook struct {
	URL    string
	Issuer string
	Alg    string
	Store  Store
	Keys   Signer
	Log    *slog.Logger
	Client *http.Client // nil: 10 s timeout, no redirects
	// Poll is how often the log is read without a wake-up (other replicas' exchanges); MinBackoff
	// and MaxBackoff bound the wait between attempts while the receiver fails.
	Poll, MinBackoff, MaxBackoff time.Duration
	// Delivered, when set, is told each attempt's outcome (metrics); true comes once the cursor has
	// moved past the delivered event.
	Delivered func(ok bool)

	once sync.Once
	wake chan struct{}
}

// Wake makes the deliverer read the log now (called after an exchange that asks to notify).
func (w *Webhook) Wake() {
	select {
	case w.wakeChan() <- struct{}{}:
	default:
	}
}

func (w *Webhook) wakeChan() chan struct{} {
	w.once.Do(func() { w.wake = make(chan struct{}, 1) })
	return w.wake
}

// Run delivers until ctx is done.
func (w *Webhook) Run(ctx context.Context) {
	wake := w.wakeChan()
	if w.Client == nil {
		w.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if w.Poll <= 0 {
		w.Poll = 5 * time.Second
	}
	if w.MinBackoff <= 0 {
		w.MinBackoff = time.Second
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = 5 * time.Minute
	}
	backoff := w.MinBackoff
	var failingSince time.Time
	for {
		wait := w.Poll
		if err := w.deliverPending(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			w.Log.Warn("subject notification not delivered; will retry", "url", w.URL, "err", err, "retry_in", backoff)
			wait, backoff = backoff, nextBackoff(backoff, time.Since(failingSince), w.MinBackoff, w.MaxBackoff)
		} else {
			backoff, failingSince = w.MinBackoff, time.Time{}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// nextBackoff doubles the wait between attempts, but never beyond MaxBackoff nor beyond half of how
// long the receiver has been failing: a receiver back after a 20 s outage is retried within 10 s,
// not after a minute.
func nextBackoff(prev, failingFor, lo, hi time.Duration) time.Duration {
	return max(lo, min(2*prev, hi, failingFor/2))
}

// deliverPending sends every pending notification, chain by chain in each chain's order, moving
// the chain's cursor past each one delivered; it stops at the first failure.
func (w *Webhook) deliverPending(ctx context.Context) error {
	cursors, err := w.cursors(ctx)
	if err != nil {
		return err
	}
	chains, err := w.Store.AuditChains(ctx)
	if err != nil {
		return err
	}
	for _, c := range chains {
		for {
			events, err := w.Store.ListAudit(ctx, store.AuditFilter{Type: audit.TypeExchangeAllowed,
				InChain: &store.ChainPosition{Chain: c.ID, Position: cursors[c.ID]}, Limit: 100})
			if err != nil {
				return err
			}
			if len(events) == 0 {
				break
			}
			for _, e := range events {
				sent, err := w.deliverOne(ctx, e)
				if err != nil {
					w.outcome(false)
					return err
				}
				cursors[c.ID] = e.Position
				// What was delivered stays delivered, even when shutdown interrupts us here.
				b, _ := json.Marshal(cursors)
				if err := w.Store.PutSetting(context.WithoutCancel(ctx), w.cursorSetting(), string(b)); err != nil {
					return err
				}
				if sent {
					w.outcome(true)
				}
			}
		}
	}
	return nil
}

func (w *Webhook) outcome(ok bool) {
	if w.Delivered != nil {
		w.Delivered(ok)
	}
}

// cursors reads the destination's cursor per chain.
func (w *Webhook) cursors(ctx context.Context) (map[string]int64, error) {
	v, err := w.Store.GetSetting(ctx, w.cursorSetting())
	if errors.Is(err, store.ErrNotFound) {
		// First run for this URL: start where the single cursor of earlier versions stood.
		v, err = w.Store.GetSetting(ctx, CursorSetting)
	}
	if errors.Is(err, store.ErrNotFound) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	if n, perr := strconv.ParseInt(v, 10, 64); perr == nil {
		return map[string]int64{"": n}, nil
	}
	cursors := map[string]int64{}
	if err := json.Unmarshal([]byte(v), &cursors); err != nil {
		return nil, fmt.Errorf("webhook cursor %s: %w", w.cursorSetting(), err)
	}
	return cursors, nil
}

// Session is the event payload: what a receiver needs to tell the subject.
type Session struct {
	Kind      string   `json:"kind"` // impersonation or delegation
	Session   string   `json:"session"`
	Rule      string   `json:"rule"`
	Subject   Person   `json:"subject"`
	Actor     Person   `json:"actor"`
	Client    string   `json:"client_id"`
	Audience  []string `json:"audience"`
	Scope     string   `json:"scope,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	StartedAt int64    `json:"started_at"`
	ExpiresAt string   `json:"expires_at"`
}

// Person names a party; Username and Email are filled for users.
type Person struct {
	ID       string `json:"id"`
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
}

// set is the Security Event Token (RFC 8417 §2.2).
type set struct {
	Issuer   string                     `json:"iss"`
	IssuedAt int64                      `json:"iat"`
	ID       string                     `json:"jti"`
	Audience string                     `json:"aud"`
	Subject  map[string]string          `json:"sub_id"` // RFC 9493 subject identifier
	Events   map[string]json.RawMessage `json:"events"`
}

// deliverOne sends the notification an audit event asks for, if any; sent reports whether the
// receiver accepted one.
func (w *Webhook) deliverOne(ctx context.Context, e store.AuditEvent) (sent bool, err error) {
	var d exchange.Allowed
	if err := json.Unmarshal(e.Details, &d); err != nil || !d.NotifySubject || d.Session == "" {
		return false, nil // not a notifying session opening: nothing to send
	}
	payload := Session{Kind: d.Mode, Session: d.Session, Rule: d.Rule, Subject: w.person(ctx, e.Subject), Actor: w.person(ctx, e.Actor),
		Client: e.Client, Audience: d.Audience, Scope: d.Scope, Reason: d.Reason, StartedAt: e.At.Unix(), ExpiresAt: d.ExpiresAt}
	body, err := json.Marshal(payload)
	if err != nil {
		return false, err
	}
	token, err := w.Keys.Sign(w.Alg, SETType, set{
		Issuer: w.Issuer, IssuedAt: time.Now().Unix(), ID: "audit-" + strconv.FormatInt(e.Seq, 10), Audience: w.URL,
		Subject: map[string]string{"format": "opaque", "id": e.Subject}, Events: map[string]json.RawMessage{EventURI: body},
	})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader([]byte(token)))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	resp, err := w.Client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		// RFC 8935 §2.3: the receiver rejected this SET; sending it again cannot help.
		w.Log.Error("the webhook receiver rejected a subject notification; skipping it", "session", d.Session, "audit_seq", e.Seq,
			"status", resp.Status, "body", string(bytes.TrimSpace(msg)))
		w.outcome(false)
		return false, nil
	default:
		return false, fmt.Errorf("receiver answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	w.Log.Info("subject notified", "session", d.Session, "subject", e.Subject, "audit_seq", e.Seq)
	return true, nil
}

// person describes a party; a user's name and email come from the store when it has them.
func (w *Webhook) person(ctx context.Context, id string) Person {
	p := Person{ID: id}
	if u, err := w.Store.GetUser(ctx, id); err == nil {
		p.Username, p.Email = u.Username, u.Email
	}
	return p
}
