-- +goose Up
-- Service accounts get a grant allow-list like clients. Existing accounts get client_credentials
-- and the JWT bearer grant, what service accounts are for; token exchange and refresh_token, which
-- every account could use before, must now be granted (`signet serviceaccount update --add-grant`).
ALTER TABLE service_accounts ADD COLUMN grant_types TEXT NOT NULL DEFAULT '[]';
UPDATE service_accounts SET grant_types = '["client_credentials","urn:ietf:params:oauth:grant-type:jwt-bearer"]';

-- +goose Down
ALTER TABLE service_accounts DROP COLUMN grant_types;
