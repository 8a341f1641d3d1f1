-- +goose Up
-- The audit chain is keyed from here on: each event's hash is HMAC-SHA-256 under a key derived from
-- the master key. Events already stored were chained with plain SHA-256 and stay as they are; this
-- records where the keyed chain begins (1 in a new database). The first keyed event's HMAC covers
-- the last unkeyed hash, so rewriting the older events still breaks the chain. Replace, not insert:
-- only the value computed now is true.
DELETE FROM settings WHERE name = 'audit_chain_keyed_from';
INSERT INTO settings (name, value)
    SELECT 'audit_chain_keyed_from', CAST(COALESCE(MAX(seq), 0) + 1 AS TEXT) FROM audit_events;

-- +goose Down
-- Older versions verify every event unkeyed: they report keyed events as modified.
DELETE FROM settings WHERE name = 'audit_chain_keyed_from';
