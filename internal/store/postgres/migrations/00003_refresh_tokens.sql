-- +goose Up
-- Refresh tokens rotate on every use: used_at marks the one that was exchanged for its successor,
-- so presenting it again is detected as reuse.
ALTER TABLE tokens ADD COLUMN used_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tokens_grant ON tokens (grant_id);
CREATE INDEX tokens_subject ON tokens (subject);

-- +goose Down
DROP INDEX tokens_subject;
DROP INDEX tokens_grant;
ALTER TABLE tokens DROP COLUMN used_at;
