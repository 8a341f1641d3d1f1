-- +goose Up
-- The audit log becomes a set of hash chains, one per writer, so that replicas append without
-- waiting for each other (SQLite has one writer and keeps the one chain ""). Each event records its
-- chain and its position in it; the events written so far are chain "" and their position is their
-- sequence number. audit_chains registers each chain's head, which its writer updates in the
-- transaction that appends to it: the update is the chain's concurrency guard (a writer with a
-- stale head changes no row and retries) and tells verification where each chain must end.
ALTER TABLE audit_events ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0;
UPDATE audit_events SET chain_seq = seq;
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain, chain_seq);
CREATE TABLE audit_chains (
    id         TEXT PRIMARY KEY,
    chain_seq  INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    opened_at  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO audit_chains (id, chain_seq, hash, opened_at, updated_at)
    SELECT '', seq, hash, (SELECT MIN(at) FROM audit_events), at FROM audit_events ORDER BY seq DESC LIMIT 1;

-- +goose Down
DROP TABLE audit_chains;
DROP INDEX audit_events_chain_seq;
ALTER TABLE audit_events DROP COLUMN chain_seq;
ALTER TABLE audit_events DROP COLUMN chain;
