package store

import (
	"bytes"
	"crypto/sha256"
	"strconv"
	"time"
)

// Canonical is the byte string an audit event's hash covers: every field but the hashes, in a fixed
// order, then the details exactly as stored (so any change to them, even whitespace, shows).
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
	field(strconv.FormatInt(e.Seq, 10))
	field(e.At.UTC().Format(time.RFC3339Nano))
	field(e.Type)
	field(e.Actor)
	field(e.Subject)
	field(e.Client)
	b.Write(details)
	return b.Bytes()
}

// ChainHash returns SHA-256(prev || canonical(e)), the hash that links e to its predecessor.
func ChainHash(prev []byte, e *AuditEvent) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(e.Canonical())
	return h.Sum(nil)
}
