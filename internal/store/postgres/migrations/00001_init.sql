-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    locked        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE TABLE service_accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    secret_salt BYTEA,
    secret_hash BYTEA,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE TABLE clients (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    type                TEXT NOT NULL,
    auth_method         TEXT NOT NULL,
    secret_salt         BYTEA,
    secret_hash         BYTEA,
    redirect_uris       TEXT NOT NULL,
    grant_types         TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    audiences           TEXT NOT NULL,
    access_token_format TEXT NOT NULL,
    access_token_alg    TEXT NOT NULL,
    access_token_ttl    BIGINT NOT NULL,
    refresh_token_ttl   BIGINT NOT NULL,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL,
    built_in    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE role_grants (
    principal_kind TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    role           TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (principal_kind, principal_id, role)
);
CREATE TABLE public_keys (
    id             TEXT PRIMARY KEY,
    owner_kind     TEXT NOT NULL,
    owner_id       TEXT NOT NULL,
    algorithm      TEXT NOT NULL,
    public_key_pem BYTEA NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX public_keys_owner ON public_keys (owner_kind, owner_id);
CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    state        TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_jwk   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    activated_at BIGINT NOT NULL,
    retired_at   BIGINT NOT NULL
);
CREATE TABLE tokens (
    hash         BYTEA PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject      TEXT NOT NULL,
    scope        TEXT NOT NULL,
    audience     TEXT NOT NULL,
    issued_at    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT NOT NULL,
    grant_id     TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    claims       BYTEA
);
CREATE INDEX tokens_expires ON tokens (expires_at);
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX revocations_expires ON revocations (expires_at);
CREATE TABLE assertion_ids (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE TABLE changes (
    seq  BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO roles (name, description, permissions, built_in) VALUES
    ('admin', 'administers Signet and may introspect every token', '["signet:admin","signet:introspect","introspect:any"]', TRUE),
    ('introspector', 'may call the introspection endpoint (service accounts)', '["signet:introspect"]', TRUE),
    ('support', 'support staff (impersonation rules name this role)', '[]', TRUE);

-- +goose Down
DROP TABLE settings;
DROP TABLE changes;
DROP TABLE assertion_ids;
DROP TABLE revocations;
DROP TABLE tokens;
DROP TABLE signing_keys;
DROP TABLE public_keys;
DROP TABLE role_grants;
DROP TABLE roles;
DROP TABLE clients;
DROP TABLE service_accounts;
DROP TABLE users;
