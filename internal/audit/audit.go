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
	"math"
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
	// Sign-in (hosted pages): successes and failures, sessions ending, second factors and passwords
	// changed by their owner, consents given.
	TypeSignInSucceeded   = "signin.succeeded"
	TypeSignInFailed      = "signin.failed"
	TypeSignInThrottled   = "signin.throttled"
	TypeBrowserSessionEnd = "session.ended"
	TypeMFAChanged        = "mfa.changed"
	TypePasswordChanged   = "password.changed"
	TypeConsentGranted    = "consent.granted"
	// Back-channel logout: the outcome of telling one client that a browser session ended.
	TypeLogoutDelivered = "logout.delivered"
	TypeLogoutFailed    = "logout.failed"
	// Written by the store: the first keyed event of chain "" on PostgreSQL, sealing events written
	// before the keyed chain when replicas move to chains of their own.
	TypeAuditSealed = "audit.sealed"
)

// Store is what the log needs from the store.
type Store interface {
	AppendAudit(ctx context.Context, events ...*store.AuditEvent) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	AuditChains(ctx context.Context, unregistered bool) ([]store.AuditChain, error)
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
	Seq    int64  `json:"broken_at_seq,omitempty"` // the broken event's sequence number, when it exists
	Reason string `json:"reason,omitempty"`
	// Chain and Position place the broken link in its chain.
	Chain    string `json:"broken_in_chain,omitempty"`
	Position int64  `json:"broken_at_position,omitempty"`
	// KeyedFrom is the first event of chain "" chained with the audit key; the Unkeyed events before
	// it were written by versions before the keyed chain (SHA-256 only) and are sealed by its HMAC.
	KeyedFrom int64 `json:"keyed_from"`
	Unkeyed   int   `json:"unkeyed_events"`
	// Head is the newest event of an intact log, Chains the head of every chain (each writer's), all
	// with anchors to record outside the database.
	Head   *Head  `json:"head,omitempty"`
	Chains []Head `json:"chains,omitempty"`
}

// Head is the newest event of a chain.
type Head struct {
	Chain    string `json:"chain"`
	Position int64  `json:"position"`
	Seq      int64  `json:"seq"`
	Hash     string `json:"hash"`   // hex
	Anchor   string `json:"anchor"` // the head as an Anchor, to keep outside the database
	Events   int    `json:"events"` // how many events the chain holds
}

// Anchor is a chain's head recorded outside the database. Verify given an anchor checks that the
// event at Seq in Chain still has Hash, which detects what the chains alone cannot: events deleted
// from a chain's end, a chain deleted whole, or the log rewritten. Tag is an HMAC under the audit
// key, so only Signet makes anchors and one planted in the operator's records by someone without
// the key is refused.
type Anchor struct {
	Chain string
	Seq   int64 // the position in the chain (in chain "" also the event's sequence number)
	Hash  []byte
	Tag   []byte
}

// anchorTagSize is how much of the HMAC an anchor keeps (128 bits): short to copy, long enough that
// it cannot be guessed.
const anchorTagSize = 16

// NewAnchor returns the anchor of the event at position seq of chain with hash. Its tag is the first
// 16 bytes of HMAC-SHA-256(audit key, "signet audit anchor v1" ⏎ seq ⏎ hash) for chain "", and of
// HMAC-SHA-256(audit key, "signet audit anchor v2" ⏎ chain ⏎ seq ⏎ hash) for a named chain.
func NewAnchor(key []byte, chain string, seq int64, hash []byte) Anchor {
	return Anchor{Chain: chain, Seq: seq, Hash: bytes.Clone(hash), Tag: anchorTag(key, chain, seq, hash)}
}

func anchorTag(key []byte, chain string, seq int64, hash []byte) []byte {
	m := hmac.New(sha256.New, key)
	if chain == "" {
		m.Write([]byte("signet audit anchor v1\n" + strconv.FormatInt(seq, 10) + "\n"))
	} else {
		m.Write([]byte("signet audit anchor v2\n" + chain + "\n" + strconv.FormatInt(seq, 10) + "\n"))
	}
	m.Write(hash)
	return m.Sum(nil)[:anchorTagSize]
}

// String is the anchor as printed by `signet audit verify`: SEQ:HASH:TAG for chain "", and
// CHAIN@SEQ:HASH:TAG for a named chain, hashes in hex.
func (a Anchor) String() string {
	if a.Chain == "" {
		return fmt.Sprintf("%d:%x:%x", a.Seq, a.Hash, a.Tag)
	}
	return fmt.Sprintf("%s@%d:%x:%x", a.Chain, a.Seq, a.Hash, a.Tag)
}

// ParseAnchor reads what String wrote.
func ParseAnchor(s string) (Anchor, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, ":")
	if len(parts) < 3 {
		return Anchor{}, fmt.Errorf("audit anchor %q: want [CHAIN@]SEQ:HASH:TAG as printed by `signet audit verify`", s)
	}
	place, hashHex, tagHex := strings.Join(parts[:len(parts)-2], ":"), parts[len(parts)-2], parts[len(parts)-1]
	chain, num := "", place
	if i := strings.LastIndex(place, "@"); i >= 0 {
		chain, num = place[:i], place[i+1:]
		if chain == "" {
			return Anchor{}, fmt.Errorf("audit anchor %q: the chain before @ is empty", s)
		}
	}
	seq, err := strconv.ParseInt(num, 10, 64)
	if err != nil || seq < 1 {
		return Anchor{}, fmt.Errorf("audit anchor %q: the event number is not a positive integer", s)
	}
	hash, err1 := hex.DecodeString(hashHex)
	tag, err2 := hex.DecodeString(tagHex)
	if err1 != nil || err2 != nil || len(hash) != sha256.Size || len(tag) != anchorTagSize {
		return Anchor{}, fmt.Errorf("audit anchor %q: the hash (32 bytes) and tag (16 bytes) must be hex", s)
	}
	return Anchor{Chain: chain, Seq: seq, Hash: hash, Tag: tag}, nil
}

// ErrNoKey means Verify was called without the audit key.
var ErrNoKey = errors.New("verify the audit log: no audit key")

// Verify walks every chain of the log in order with the audit key and reports the first broken
// link: an edited event (its hash no longer matches), a deleted or reordered one (a gap in the
// chain's positions, or a link to the wrong predecessor), an event moved to another chain (the
// chain's first link binds its name), an event re-hashed without the key, a chain whose events end
// before or after the head its writer registered, or a keyed-from marker that was removed or moved
// past the newest event of chain "". Events of chain "" before the marker are checked with the
// unkeyed hash they were written with; moving the marker anywhere inside the chain breaks a link,
// because every keyed HMAC covers the hash before it. Each anchor must be one Signet made, and its
// event must still exist with the anchored hash.
func Verify(ctx context.Context, st Store, key []byte, anchors ...Anchor) (*Result, error) {
	if len(key) == 0 {
		return nil, ErrNoKey
	}
	res := &Result{Intact: true}
	for _, a := range anchors {
		if !hmac.Equal(a.Tag, anchorTag(key, a.Chain, a.Seq, a.Hash)) {
			return brokenAt(res, a.Chain, a.Seq, fmt.Sprintf("the anchor for event %s was not made with this master key's audit key, or was altered", place(a.Chain, a.Seq))), nil
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
	chains, err := st.AuditChains(ctx, true)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range chains {
		known[c.ID] = true
	}
	for _, a := range anchors {
		if !known[a.Chain] {
			return brokenAt(res, a.Chain, a.Seq, fmt.Sprintf("chain %q is gone, but an anchor records its event %d: the chain was deleted", a.Chain, a.Seq)), nil
		}
	}
	for _, reg := range chains {
		c := &chain{id: reg.ID, key: key, keyedFrom: from, prev: store.ChainGenesis(key, reg.ID), anchors: anchors}
		if reg.ID != "" {
			c.keyedFrom = 1
		}
		if bad := c.walk(ctx, st, res); bad != nil || c.err != nil {
			if c.err != nil {
				return nil, c.err
			}
			return bad, nil
		}
		if bad := c.end(res, reg); bad != nil {
			return bad, nil
		}
		if c.last > 0 {
			h := Head{Chain: c.id, Position: c.last, Seq: c.lastSeq, Hash: hex.EncodeToString(c.prev), Anchor: NewAnchor(key, c.id, c.last, c.prev).String(), Events: c.events}
			res.Chains = append(res.Chains, h)
			if res.Head == nil || h.Seq > res.Head.Seq {
				res.Head = &h // the chain written last
			}
		}
	}
	if !known[""] {
		// No event of chain "" and no registration: the marker must still point at its start.
		c := &chain{id: "", keyedFrom: from}
		if bad := c.end(res, store.AuditChain{}); bad != nil {
			return bad, nil
		}
	}
	return res, nil
}

// place names an event in messages: its number for chain "", chain@number otherwise.
func place(chain string, seq int64) string {
	if chain == "" {
		return strconv.FormatInt(seq, 10)
	}
	return fmt.Sprintf("%s@%d", chain, seq)
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

// chain checks one chain's events one after the other.
type chain struct {
	id        string
	key       []byte
	keyedFrom int64 // positions before it are unkeyed (chain "" only)
	anchors   []Anchor
	prev      []byte // the hash of the last event checked (the genesis before the first)
	last      int64  // its position
	lastSeq   int64  // its sequence number
	events    int
	err       error
}

// walk checks every event of the chain in order, counting them in res, and returns the result for
// the first broken link (nil when none; c.err on a read error).
func (c *chain) walk(ctx context.Context, st Store, res *Result) *Result {
	const pageSize = 1000
	for {
		after := c.last
		if c.last == 0 {
			after = math.MinInt64 // from the start: a position below 1 is forged, and must be seen
		}
		page, err := st.ListAudit(ctx, store.AuditFilter{InChain: &store.ChainPosition{Chain: c.id, Position: after}, Limit: pageSize})
		if err != nil {
			c.err = err
			return nil
		}
		for i := range page {
			if reason := c.next(&page[i]); reason != "" {
				res.Seq = page[i].Seq
				if page[i].Position != c.last+1 {
					res.Seq = 0 // the missing event has no number
				}
				return brokenAt(res, c.id, min(page[i].Position, c.last+1), reason)
			}
			res.Events++
			c.events++
			if c.id == "" && page[i].Position < c.keyedFrom {
				res.Unkeyed++
			}
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

// next checks e against the events before it and the anchors; on a broken link it says why.
func (c *chain) next(e *store.AuditEvent) string {
	at := place(c.id, e.Position)
	switch {
	case e.Position < 1:
		return fmt.Sprintf("event %s is at no position of its chain (positions start at 1): it was forged", at)
	case e.Position != c.last+1:
		return fmt.Sprintf("event %s is missing: the chain jumps from %d to %d (deleted)", place(c.id, c.last+1), c.last, e.Position)
	case !bytes.Equal(e.PrevHash, c.prev) && c.last == 0:
		return fmt.Sprintf("event %s does not start chain %q (its first link is not the chain's: moved from another chain, or the chain renamed)", at, c.id)
	case !bytes.Equal(e.PrevHash, c.prev):
		return fmt.Sprintf("event %s does not link to event %s (its predecessor was changed, deleted or replaced)", at, place(c.id, c.last))
	case e.Position >= c.keyedFrom && !hmac.Equal(e.Hash, store.ChainHash(c.key, c.prev, e)):
		return fmt.Sprintf("event %s was modified after it was written (its content no longer matches its HMAC: edited, re-hashed without the audit key, or written under another master key)", at)
	case e.Position < c.keyedFrom && !bytes.Equal(e.Hash, store.UnkeyedChainHash(c.prev, e)):
		return fmt.Sprintf("event %s was modified after it was written (its content no longer matches its hash)", at)
	}
	for _, a := range c.anchors {
		if a.Chain == c.id && a.Seq == e.Position && !bytes.Equal(a.Hash, e.Hash) {
			return fmt.Sprintf("event %s does not match its anchor: the log was rewritten up to this event", at)
		}
	}
	c.prev, c.last, c.lastSeq = e.Hash, e.Position, e.Seq
	return ""
}

// end checks what the chain's last event implies: it is the head the chain's writer registered, no
// anchor lies beyond it, and (chain "") the keyed chain does not begin after the event that would
// follow it.
func (c *chain) end(res *Result, reg store.AuditChain) *Result {
	for _, a := range c.anchors {
		if a.Chain == c.id && a.Seq > c.last {
			return brokenAt(res, c.id, c.last+1, fmt.Sprintf("chain %q ends at event %d, but an anchor records event %d: events were deleted from the end", c.id, c.last, a.Seq))
		}
	}
	switch {
	case !reg.Registered && c.last > 0:
		return brokenAt(res, c.id, 0, fmt.Sprintf("chain %q holds %d events but is not registered: its registration was deleted", c.id, c.last))
	case reg.Registered && reg.Position > c.last:
		return brokenAt(res, c.id, c.last+1, fmt.Sprintf("chain %q ends at event %d, but its writer registered event %d as its head: events were deleted from the end", c.id, c.last, reg.Position))
	case reg.Registered && (reg.Position != c.last || !bytes.Equal(reg.Hash, c.prev)):
		return brokenAt(res, c.id, reg.Position, fmt.Sprintf("chain %q ends at event %d, but its registered head is event %d with another hash: the chain or its registration was altered", c.id, c.last, reg.Position))
	}
	if c.id == "" && c.keyedFrom > c.last+1 {
		return brokenAt(res, "", c.last+1, fmt.Sprintf("the log is marked as keyed from event %d but ends at event %d: its keyed events were deleted or the marker (setting %s) was moved", c.keyedFrom, c.last, store.AuditKeyedFromSetting))
	}
	return nil
}

func broken(r *Result, seq int64, reason string) *Result {
	r.Intact, r.Seq, r.Reason, r.Head, r.Chains = false, seq, reason, nil, nil
	return r
}

// brokenAt reports a broken link at a position of a chain; for chain "" the position is also the
// event's number.
func brokenAt(r *Result, chain string, position int64, reason string) *Result {
	seq := r.Seq
	if chain == "" {
		seq = position
	}
	broken(r, seq, reason)
	r.Chain, r.Position = chain, position
	return r
}
