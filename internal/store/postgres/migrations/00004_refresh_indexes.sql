-- +goose Up
-- Revocations mark stored refresh tokens by grant, subject or client: only refresh tokens need
-- those indexes, so access-token inserts do not pay for them.
DROP INDEX tokens_grant;
DROP INDEX tokens_subject;
CREATE INDEX tokens_refresh_grant ON tokens (grant_id) WHERE kind = 'refresh_token';
CREATE INDEX tokens_refresh_subject ON tokens (subject) WHERE kind = 'refresh_token';
CREATE INDEX tokens_refresh_client ON tokens (client_id) WHERE kind = 'refresh_token';

-- +goose Down
DROP INDEX tokens_refresh_client;
DROP INDEX tokens_refresh_subject;
DROP INDEX tokens_refresh_grant;
CREATE INDEX tokens_grant ON tokens (grant_id);
CREATE INDEX tokens_subject ON tokens (subject);
