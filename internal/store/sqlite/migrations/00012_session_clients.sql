-- +goose Up
-- The clients each browser session signed in to: whom back-channel logout tells when the session
-- ends (OIDC Back-Channel Logout 1.0). One row per pair, written with every code issued; pruned
-- with the session.
CREATE TABLE session_clients (
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    first_at   BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE session_clients;
