-- An event id is unique per tenant, not across tenants (docs/tenants.md):
-- the primary key of audit_logs becomes (id, tenant). id stays the
-- leading column, so every lookup by id (with or without its tenant)
-- still goes down the key's index. Rows of the old schema keep their
-- ids; each is unique within its tenant since it was unique overall.
--
-- The new index is built first, under CREATE INDEX's SHARE lock (reads
-- go on, writes wait: new events wait in the AUDIT stream), then the old
-- key is dropped and the new index promoted to primary key, both
-- catalogue changes. The build reads audit_logs once and sorts its ids:
-- measured at 10 million rows in docs/tenants.md.
CREATE UNIQUE INDEX IF NOT EXISTS audit_logs_id_tenant_key ON audit_logs (id, tenant);

--bun:split

ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS audit_logs_pkey;

--bun:split

ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_pkey PRIMARY KEY USING INDEX audit_logs_id_tenant_key;
