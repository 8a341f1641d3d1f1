-- +goose Up
-- introspect:any becomes a role of its own, so a gateway that must introspect every token need not
-- be an administrator. The admin role keeps it.
INSERT INTO roles (name, description, permissions, built_in) VALUES
    ('introspect-any', 'may introspect every token, whatever its audience (gateways; service accounts and clients)', '["signet:introspect","introspect:any"]', 1)
ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions, built_in = excluded.built_in;

-- +goose Down
DELETE FROM roles WHERE name = 'introspect-any';
