// Package audit writes and checks Signet's tamper-evident audit log: append-only events, each
// chained to the one before by an HMAC under a key derived from the master key (SPEC §8). Writes are
// group-committed (and chained) by the store and durable when Record returns, so callers can record
// before they act. Verify walks the chain with the key and names the first broken link.
package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Event types.
const (
	TypeTokenIssued       = "token.issued"
	TypeTokenRevoked      = "token.revoked"
	TypeExchangeAllowed   = "exchange.allowed"
	TypeExchangeDenied    = "exchange.denied"
	TypeSessionEnded      = "impersonation.ended"
	TypeImpersonationOff  = "impersonation.disabled"
	TypeImpersonationOn   = "impersonation.enabled"
	TypePolicyChanged     = "policy.changed"
	TypeSigningKeyRotated = "key.rotated"
	// Changes made by an operator (CLI or admin API); details name the action.
	TypeClientChanged         = "client.changed"
	TypeUserChanged           = "user.changed"
	TypeServiceAccountChanged = "serviceaccount.changed"
	TypeRoleChanged           = "role.changed"
	TypePublicKeyChanged      = "key.changed" // key files: created or revoked
)

// Store is what the log needs from the store.
type Store interface {
	AppendAudit(ctx context.Context, events ...*store.AuditEvent) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	GetSetting(ctx context.Context, name string) (string, error) // where the keyed chain begins
}

// Event is what a caller records; the log adds time, sequence and hashes.
type Event struct {
	Type    string
	Actor   string
	Subject string
	Client  string
	Details any // a map or struct, stored as compact JSON
}

// Log records events.
type Log struct {
	st  Store
	now func() time.Time
}

// New returns a log over st.
func New(st Store) *Log { return &Log{st: st, now: time.Now} }

// Build turns an Event into the stored record (time and details; the store chains it).
func (l *Log) Build(e Event) (*store.AuditEvent, error) {
	var details []byte
	if e.Details != nil {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return nil, fmt.Errorf("audit details: %w", err)
		}
		details = b
	}
	return &store.AuditEvent{At: l.now(), Type: e.Type, Actor: e.Actor, Subject: e.Subject, Client: e.Client, Details: details}, nil
}

// Record appends events and returns once they are durable. An error means nothing was recorded,
// and whatever the events describe must not happen.
func (l *Log) Record(ctx context.Context, events ...Event) error {
	out := make([]*store.AuditEvent, len(events))
	for i, e := range events {
		ev, err := l.Build(e)
		if err != nil {
			return err
		}
		out[i] = ev
	}
	if err := l.st.AppendAudit(ctx, out...); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// Result is what Verify found.
type Result struct {
	Events int    `json:"events"`
	Intact bool   `json:"intact"`
	Seq    int64  `json:"broken_at_seq,omitempty"`
	Reason string `json:"reason,omitempty"`
	// KeyedFrom is the first event chained with the audit key; the Unkeyed events before it were
	// written by versions before the keyed chain (SHA-256 only) and are sealed by its HMAC.
	KeyedFrom int64 `json:"keyed_from"`
	Unkeyed   int   `json:"unkeyed_events"`
	// Head is the newest event of an intact chain, to record outside the database.
	Head *Head `json:"head,omitempty"`
}

// Head is the newest event of the chain.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"` // hex
}

// ErrNoKey means Verify was called without the audit key.
var ErrNoKey = errors.New("verify the audit log: no audit key")

// Verify walks the whole chain in order with the audit key and reports the first broken link: an
// edited event (its hash no longer matches), a deleted or reordered one (a gap in the sequence, or a
// link to the wrong predecessor), an event re-hashed without the key, or a keyed-from marker that
// was removed or moved past the newest event. Events before the marker are checked with the unkeyed
// hash they were written with; moving the marker anywhere inside the chain breaks a link, because
// every keyed HMAC covers the hash before it.
func Verify(ctx context.Context, st Store, key []byte) (*Result, error) {
	if len(key) == 0 {
		return nil, ErrNoKey
	}
	res := &Result{Intact: true}
	from, reason, err := keyedFrom(ctx, st)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return broken(res, 0, reason), nil
	}
	res.KeyedFrom = from
	c := chain{key: key, keyedFrom: from, prev: []byte{}}
	for {
		page, err := st.ListAudit(ctx, store.AuditFilter{AfterSeq: c.last, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for i := range page {
			if seq, reason := c.next(&page[i]); reason != "" {
				return broken(res, seq, reason), nil
			}
			res.Events++
			if page[i].Seq < from {
				res.Unkeyed++
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	if from > c.last+1 {
		return broken(res, c.last+1, fmt.Sprintf("the log is marked as keyed from event %d but ends at event %d: its keyed events were deleted or the marker (setting %s) was moved", from, c.last, store.AuditKeyedFromSetting)), nil
	}
	if c.last > 0 {
		res.Head = &Head{Seq: c.last, Hash: hex.EncodeToString(c.prev)}
	}
	return res, nil
}

// keyedFrom reads the sequence number from which the chain is keyed; reason is set when the
// marker is missing or malformed (every migrated database has one).
func keyedFrom(ctx context.Context, st Store) (from int64, reason string, err error) {
	v, err := st.GetSetting(ctx, store.AuditKeyedFromSetting)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Sprintf("the setting %s, where the keyed chain begins, is missing (every migrated database has it): it was deleted", store.AuditKeyedFromSetting), nil
	}
	if err != nil {
		return 0, "", err
	}
	from, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || from < 1 {
		return 0, fmt.Sprintf("the setting %s is %q, not an event number: it was altered", store.AuditKeyedFromSetting, v), nil
	}
	return from, "", nil
}

// chain checks events one after the other.
type chain struct {
	key       []byte
	keyedFrom int64
	prev      []byte // the hash of the last event checked
	last      int64  // its sequence number
}

// next checks e against the events before it; on a broken link it returns where and why.
func (c *chain) next(e *store.AuditEvent) (int64, string) {
	switch {
	case e.Seq != c.last+1:
		return c.last + 1, fmt.Sprintf("event %d is missing: the log jumps from %d to %d (deleted)", c.last+1, c.last, e.Seq)
	case !bytes.Equal(e.PrevHash, c.prev):
		return e.Seq, fmt.Sprintf("event %d does not link to event %d (its predecessor was changed, deleted or replaced)", e.Seq, c.last)
	case e.Seq >= c.keyedFrom && !hmac.Equal(e.Hash, store.ChainHash(c.key, c.prev, e)):
		return e.Seq, fmt.Sprintf("event %d was modified after it was written (its content no longer matches its HMAC: edited, re-hashed without the audit key, or written under another master key)", e.Seq)
	case e.Seq < c.keyedFrom && !bytes.Equal(e.Hash, store.UnkeyedChainHash(c.prev, e)):
		return e.Seq, fmt.Sprintf("event %d was modified after it was written (its content no longer matches its hash)", e.Seq)
	}
	c.prev, c.last = e.Hash, e.Seq
	return 0, ""
}

func broken(r *Result, seq int64, reason string) *Result {
	r.Intact, r.Seq, r.Reason, r.Head = false, seq, reason, nil
	return r
}
