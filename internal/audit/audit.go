// Package audit writes and checks Signet's tamper-evident audit log: append-only events, each
// chained to the one before by an HMAC under a key derived from the master key (SPEC §8). Writes are
// group-committed (and chained) by the store and durable when Record returns, so callers can record
// before they act. Verify walks the chain with the key and names the first broken link.
package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	Seq    int64  `json:"seq"`
	Hash   string `json:"hash"`   // hex
	Anchor string `json:"anchor"` // the head as an Anchor, to keep outside the database
}

// Anchor is a head of the chain recorded outside the database. Verify given an anchor checks that
// event Seq still has Hash, which detects what the chain alone cannot: events deleted from the end,
// or the whole log rewritten. Tag is an HMAC under the audit key, so only Signet makes anchors and
// one planted in the operator's records by someone without the key is refused.
type Anchor struct {
	Seq  int64
	Hash []byte
	Tag  []byte
}

// anchorTagSize is how much of the HMAC an anchor keeps (128 bits): short to copy, long enough that
// it cannot be guessed.
const anchorTagSize = 16

// NewAnchor returns the anchor of event seq with hash; its tag is the first 16 bytes of
// HMAC-SHA-256(audit key, "signet audit anchor v1\n" || seq in decimal || "\n" || hash).
func NewAnchor(key []byte, seq int64, hash []byte) Anchor {
	return Anchor{Seq: seq, Hash: bytes.Clone(hash), Tag: anchorTag(key, seq, hash)}
}

func anchorTag(key []byte, seq int64, hash []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("signet audit anchor v1\n" + strconv.FormatInt(seq, 10) + "\n"))
	m.Write(hash)
	return m.Sum(nil)[:anchorTagSize]
}

// String is the anchor as printed by `signet audit verify`: seq:hash:tag, hashes in hex.
func (a Anchor) String() string { return fmt.Sprintf("%d:%x:%x", a.Seq, a.Hash, a.Tag) }

// ParseAnchor reads what String wrote.
func ParseAnchor(s string) (Anchor, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return Anchor{}, fmt.Errorf("audit anchor %q: want seq:hash:tag as printed by `signet audit verify`", s)
	}
	seq, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || seq < 1 {
		return Anchor{}, fmt.Errorf("audit anchor %q: the event number is not a positive integer", s)
	}
	hash, err1 := hex.DecodeString(parts[1])
	tag, err2 := hex.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(hash) != sha256.Size || len(tag) != anchorTagSize {
		return Anchor{}, fmt.Errorf("audit anchor %q: the hash (32 bytes) and tag (16 bytes) must be hex", s)
	}
	return Anchor{Seq: seq, Hash: hash, Tag: tag}, nil
}

// ErrNoKey means Verify was called without the audit key.
var ErrNoKey = errors.New("verify the audit log: no audit key")

// Verify walks the whole chain in order with the audit key and reports the first broken link: an
// edited event (its hash no longer matches), a deleted or reordered one (a gap in the sequence, or a
// link to the wrong predecessor), an event re-hashed without the key, or a keyed-from marker that
// was removed or moved past the newest event. Events before the marker are checked with the unkeyed
// hash they were written with; moving the marker anywhere inside the chain breaks a link, because
// every keyed HMAC covers the hash before it. Each anchor must be one Signet made, and its event
// must still exist with the anchored hash.
func Verify(ctx context.Context, st Store, key []byte, anchors ...Anchor) (*Result, error) {
	if len(key) == 0 {
		return nil, ErrNoKey
	}
	res := &Result{Intact: true}
	for _, a := range anchors {
		if !hmac.Equal(a.Tag, anchorTag(key, a.Seq, a.Hash)) {
			return broken(res, a.Seq, fmt.Sprintf("the anchor for event %d was not made with this master key's audit key, or was altered", a.Seq)), nil
		}
	}
	from, reason, err := keyedFrom(ctx, st)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return broken(res, 0, reason), nil
	}
	res.KeyedFrom = from
	c := &chain{key: key, keyedFrom: from, prev: []byte{}, anchors: anchors}
	seq, reason, err := c.walk(ctx, st, res)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		seq, reason = c.end()
	}
	if reason != "" {
		return broken(res, seq, reason), nil
	}
	if c.last > 0 {
		res.Head = &Head{Seq: c.last, Hash: hex.EncodeToString(c.prev), Anchor: NewAnchor(key, c.last, c.prev).String()}
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
	anchors   []Anchor
	prev      []byte // the hash of the last event checked
	last      int64  // its sequence number
}

// walk checks every stored event in order, counting them in res, and stops at the first broken link.
func (c *chain) walk(ctx context.Context, st Store, res *Result) (seq int64, reason string, err error) {
	const pageSize = 1000
	for {
		page, err := st.ListAudit(ctx, store.AuditFilter{AfterSeq: c.last, Limit: pageSize})
		if err != nil {
			return 0, "", err
		}
		for i := range page {
			if seq, reason := c.next(&page[i]); reason != "" {
				return seq, reason, nil
			}
			res.Events++
			if page[i].Seq < c.keyedFrom {
				res.Unkeyed++
			}
		}
		if len(page) < pageSize {
			return 0, "", nil
		}
	}
}

// next checks e against the events before it and the anchors; on a broken link it returns where and why.
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
	for _, a := range c.anchors {
		if a.Seq == e.Seq && !bytes.Equal(a.Hash, e.Hash) {
			return e.Seq, fmt.Sprintf("event %d does not match its anchor: the log was rewritten up to this event", e.Seq)
		}
	}
	c.prev, c.last = e.Hash, e.Seq
	return 0, ""
}

// end checks what the last event implies: no anchor lies beyond it, and the keyed chain does not
// begin after the event that would follow it.
func (c *chain) end() (int64, string) {
	for _, a := range c.anchors {
		if a.Seq > c.last {
			return c.last + 1, fmt.Sprintf("the log ends at event %d, but an anchor records event %d: events were deleted from the end", c.last, a.Seq)
		}
	}
	if c.keyedFrom > c.last+1 {
		return c.last + 1, fmt.Sprintf("the log is marked as keyed from event %d but ends at event %d: its keyed events were deleted or the marker (setting %s) was moved", c.keyedFrom, c.last, store.AuditKeyedFromSetting)
	}
	return 0, ""
}

func broken(r *Result, seq int64, reason string) *Result {
	r.Intact, r.Seq, r.Reason, r.Head = false, seq, reason, nil
	return r
}
