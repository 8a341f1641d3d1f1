// Package audit writes and checks Signet's tamper-evident audit log: append-only events, each
// hash-chained to the one before (SPEC §8). Writes are group-committed by the store and durable
// when Record returns, so callers can record before they act. Verify walks the chain and names the
// first broken link.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
}

// Verify walks the whole chain in order and reports the first broken link: an edited event (its
// hash no longer matches), a deleted or reordered one (a gap in the sequence, or a link to the wrong
// predecessor).
func Verify(ctx context.Context, st Store) (*Result, error) {
	res := &Result{Intact: true}
	prev := []byte{}
	var last int64
	for {
		page, err := st.ListAudit(ctx, store.AuditFilter{AfterSeq: last, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for i := range page {
			e := &page[i]
			switch {
			case e.Seq != last+1:
				return broken(res, last+1, fmt.Sprintf("event %d is missing: the log jumps from %d to %d (deleted)", last+1, last, e.Seq)), nil
			case !bytes.Equal(e.PrevHash, prev):
				return broken(res, e.Seq, fmt.Sprintf("event %d does not link to event %d (its predecessor was changed, deleted or replaced)", e.Seq, last)), nil
			case !bytes.Equal(e.Hash, store.ChainHash(prev, e)):
				return broken(res, e.Seq, fmt.Sprintf("event %d was modified after it was written (its content no longer matches its hash)", e.Seq)), nil
			}
			prev, last = e.Hash, e.Seq
			res.Events++
		}
		if len(page) < 1000 {
			return res, nil
		}
	}
}

func broken(r *Result, seq int64, reason string) *Result {
	r.Intact, r.Seq, r.Reason = false, seq, reason
	return r
}
