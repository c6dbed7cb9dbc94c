-- Personal data per tenant (docs/personal-data.md#tenants). A subject key
-- is the key of one tenant's data subject: (tenant, pseudonym), where the
-- pseudonym is made under that tenant's pseudonym key. Every key stored
-- before is of the default tenant (''). A constant default changes the
-- catalogue only: no row is rewritten.
ALTER TABLE audit_subject_keys ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '';

--bun:split

-- The unique key becomes (pseudonym, tenant): lookups by pseudonym alone
-- (reports' top users) still go down it.
ALTER TABLE audit_subject_keys DROP CONSTRAINT IF EXISTS audit_subject_keys_pseudonym_key;

--bun:split

ALTER TABLE audit_subject_keys ADD CONSTRAINT audit_subject_keys_pseudonym_tenant_key UNIQUE (pseudonym, tenant);

--bun:split

-- An erasure erases the data subject of one tenant; '' for every erasure
-- recorded before (the default tenant's pseudonyms are unchanged).
ALTER TABLE audit_erasures ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '';

--bun:split

DROP INDEX IF EXISTS audit_erasures_pending_idx;

--bun:split

-- At most one pending erasure per data subject (tenant and pseudonym).
CREATE UNIQUE INDEX IF NOT EXISTS audit_erasures_pending_idx ON audit_erasures (pseudonym, tenant) WHERE completed_at IS NULL;
