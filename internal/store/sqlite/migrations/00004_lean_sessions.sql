-- +goose Up
-- Every delegation or impersonation inserts a session row on the exchange hot path. Sessions are
-- read by ID or scanned whole (active ones), so the actor and subject indexes only cost writes;
-- WITHOUT ROWID stores the row in its primary-key tree instead of a table plus an index.
CREATE TABLE exchange_sessions_lean (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    client     TEXT NOT NULL,
    rule       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT NOT NULL,
    ended_by   TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO exchange_sessions_lean SELECT id, kind, actor, subject, client, rule, reason, created_at, expires_at, ended_at, ended_by FROM exchange_sessions;
DROP TABLE exchange_sessions;
ALTER TABLE exchange_sessions_lean RENAME TO exchange_sessions;

-- +goose Down
CREATE INDEX exchange_sessions_actor ON exchange_sessions (actor);
CREATE INDEX exchange_sessions_subject ON exchange_sessions (subject);
