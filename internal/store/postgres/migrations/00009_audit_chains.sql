-- +goose Up
-- The audit log becomes a set of hash chains, one per writer (each replica, the CLI), so that
-- replicas append without one lock for the whole cluster. Each event records its chain and its
-- position in it; the events written so far are chain "" and their position is their sequence
-- number. seq is now drawn from a sequence at insert: unique and increasing in the order events
-- were written, with gaps where a transaction rolled back. audit_chains registers each chain's
-- head, which its writer updates in the transaction that appends to it: the update is the chain's
-- concurrency guard (a writer with a stale head changes no row and retries) and tells verification
-- where each chain must end.
ALTER TABLE audit_events ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN chain_seq BIGINT NOT NULL DEFAULT 0;
UPDATE audit_events SET chain_seq = seq;
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain, chain_seq);
CREATE SEQUENCE audit_events_seq OWNED BY audit_events.seq;
SELECT setval('audit_events_seq', COALESCE((SELECT MAX(seq) FROM audit_events), 0) + 1, false);
ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('audit_events_seq');
CREATE TABLE audit_chains (
    id         TEXT PRIMARY KEY,
    chain_seq  BIGINT NOT NULL,
    hash       BYTEA NOT NULL,
    opened_at  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO audit_chains (id, chain_seq, hash, opened_at, updated_at)
    SELECT '', seq, hash, (SELECT MIN(at) FROM audit_events), at FROM audit_events ORDER BY seq DESC LIMIT 1;

-- The pipelined writer sends a whole batch, COMMIT included, in one round trip: a statement that
-- must change an exact number of rows raises instead of reporting a count, so that the transaction
-- stops there (SQLSTATE SG001) and nothing after it commits.
-- +goose StatementBegin
CREATE FUNCTION signet_expect_rows(got BIGINT, want BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
    IF got <> want THEN
        RAISE EXCEPTION 'the statement changed % rows, not %', got, want USING ERRCODE = 'SG001';
    END IF;
    RETURN got;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION signet_expect_rows(BIGINT, BIGINT);
DROP TABLE audit_chains;
ALTER TABLE audit_events ALTER COLUMN seq DROP DEFAULT;
DROP SEQUENCE audit_events_seq;
DROP INDEX audit_events_chain_seq;
ALTER TABLE audit_events DROP COLUMN chain_seq;
ALTER TABLE audit_events DROP COLUMN chain;
