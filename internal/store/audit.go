package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"strconv"
	"time"
)

// AuditKeyedFromSetting names the setting that holds the sequence number of the first audit event
// chained with the audit key. The migration that introduced the keyed chain wrote it once, as the
// number after the newest event then stored (1 for a new database): events before it were written
// by earlier versions with plain SHA-256 and stay as they were. Verification decides with it which
// events to check unkeyed; it cannot be moved to downgrade keyed events (see docs/audit.md).
const AuditKeyedFromSetting = "audit_chain_keyed_from"

// Canonical is the byte string an audit event's hash covers: its position in its chain and every
// other field but the hashes, in a fixed order, then the details exactly as stored (so any change to
// them, even whitespace, shows). The chain's name is bound by the chain's first link (ChainGenesis),
// the global Seq by nothing: it only locates events.
func (e *AuditEvent) Canonical() []byte {
	details := e.Details
	if len(details) == 0 {
		details = []byte("{}")
	}
	var b bytes.Buffer
	field := func(s string) {
		b.WriteString(strconv.Quote(s))
		b.WriteByte('\n')
	}
	field(strconv.FormatInt(e.Position, 10))
	field(e.At.UTC().Format(time.RFC3339Nano))
	field(e.Type)
	field(e.Actor)
	field(e.Subject)
	field(e.Client)
	b.Write(details)
	return b.Bytes()
}

// ChainHash returns HMAC-SHA-256(key, prev || canonical(e)), the hash that links e to its
// predecessor (SPEC §8). Without the key nobody can compute it, so whoever can write the database
// but does not hold the key cannot edit history and re-hash it.
func ChainHash(key, prev []byte, e *AuditEvent) []byte {
	return chainSum(hmac.New(sha256.New, key), prev, e)
}

// UnkeyedChainHash returns SHA-256(prev || canonical(e)): how events written before the keyed chain
// (those before AuditKeyedFromSetting) were linked. Only verification uses it.
func UnkeyedChainHash(prev []byte, e *AuditEvent) []byte {
	return chainSum(sha256.New(), prev, e)
}

func chainSum(h hash.Hash, prev []byte, e *AuditEvent) []byte {
	h.Write(prev)
	h.Write(e.Canonical())
	return h.Sum(nil)
}

// ChainGenesis is what the first event of a chain links to (its PrevHash): nothing for the chain ""
// (SQLite's, and PostgreSQL's before chains per writer), else HMAC-SHA-256(key, "signet audit chain
// v1" ⏎ name). It binds the chain's name to its events: moving events to another chain, or renaming
// one, breaks the first link.
func ChainGenesis(key []byte, chain string) []byte {
	if chain == "" {
		return []byte{}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("signet audit chain v1\n" + chain))
	return m.Sum(nil)
}
