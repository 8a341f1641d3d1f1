-- +goose Up
-- One active and one next signing key per algorithm, enforced by the database: replicas starting
-- together on an empty database used to create one each. A database that already has two keeps the
-- newest and retires the others (their tokens stay verifiable while retired keys are published).
UPDATE signing_keys SET state = 'retired', retired_at = created_at
WHERE state IN ('active', 'next') AND EXISTS (
    SELECT 1 FROM signing_keys newer
    WHERE newer.algorithm = signing_keys.algorithm AND newer.state = signing_keys.state
      AND (newer.created_at > signing_keys.created_at OR (newer.created_at = signing_keys.created_at AND newer.id > signing_keys.id))
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (algorithm) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (algorithm) WHERE state = 'next';

-- +goose Down
DROP INDEX signing_keys_one_next;
DROP INDEX signing_keys_one_active;
