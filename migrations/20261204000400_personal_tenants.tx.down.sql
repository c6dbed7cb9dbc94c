DROP INDEX IF EXISTS audit_erasures_pending_idx;

--bun:split

CREATE UNIQUE INDEX IF NOT EXISTS audit_erasures_pending_idx ON audit_erasures (pseudonym) WHERE completed_at IS NULL;

--bun:split

ALTER TABLE audit_erasures DROP COLUMN IF EXISTS tenant;

--bun:split

ALTER TABLE audit_subject_keys DROP CONSTRAINT IF EXISTS audit_subject_keys_pseudonym_tenant_key;

--bun:split

ALTER TABLE audit_subject_keys ADD CONSTRAINT audit_subject_keys_pseudonym_key UNIQUE (pseudonym);

--bun:split

ALTER TABLE audit_subject_keys DROP COLUMN IF EXISTS tenant;
