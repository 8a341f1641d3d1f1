-- +goose Up
-- Interactive sign-in (SPEC §10): the user, client and role settings it reads, and its own records.
-- Existing users, clients and roles need nothing new: no password change, no second factor, first
-- party, no logout URIs. Times are Unix microseconds (0: never), lists are JSON, secrets are stored
-- only as keyed hashes (cookies, codes) or sealed (TOTP secrets).
ALTER TABLE users ADD COLUMN password_change_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN mfa_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN third_party BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE roles ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;

-- Pending authorization requests: read by ID, pruned by expiry.
CREATE TABLE login_requests (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    request      BYTEA NOT NULL,
    browser_hash BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    password_at  BIGINT NOT NULL DEFAULT 0,
    done_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_requests_expires ON login_requests (expires_at);

-- Browser sessions: read by ID, listed and ended per user, pruned by expiry or end.
CREATE TABLE browser_sessions (
    id           TEXT PRIMARY KEY,
    secret_hash  BYTEA NOT NULL,
    user_id      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL DEFAULT '[]',
    mfa_at       BIGINT NOT NULL DEFAULT 0,
    last_seen_at BIGINT NOT NULL DEFAULT 0,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT NOT NULL DEFAULT 0,
    ended_by     TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id, created_at);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);

-- Authorization codes: redeemed by hash, named by ID, pruned by expiry.
CREATE TABLE auth_codes (
    hash           BYTEA PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    amr            TEXT NOT NULL,
    acr            TEXT NOT NULL,
    grant_id       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE totp_factors (
    user_id      TEXT PRIMARY KEY,
    secret       BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT NOT NULL DEFAULT 0,
    last_step    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, hash)
);

-- Failed sign-ins per key ("user:<id>", "ip:<addr>") in fixed windows; pruned by window start.
CREATE TABLE signin_failures (
    key          TEXT PRIMARY KEY,
    count        INTEGER NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX signin_failures_window ON signin_failures (window_start);

-- +goose Down
DROP TABLE signin_failures;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
DROP TABLE consents;
DROP TABLE auth_codes;
DROP TABLE browser_sessions;
DROP TABLE login_requests;
ALTER TABLE roles DROP COLUMN require_mfa;
ALTER TABLE clients DROP COLUMN require_mfa;
ALTER TABLE clients DROP COLUMN backchannel_logout_uri;
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
ALTER TABLE clients DROP COLUMN third_party;
ALTER TABLE users DROP COLUMN mfa_required;
ALTER TABLE users DROP COLUMN password_change_required;
