-- Tenants (docs/tenants.md). Every event belongs to a tenant, '' (the
-- default) for events published on audit.log and audit.bulk and for every
-- row written before this migration. A constant default makes ADD COLUMN
-- a change of the catalogue only (PostgreSQL 11 and later): no row of
-- audit_logs is rewritten.
ALTER TABLE audit_logs ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '';

--bun:split

-- The reads of a bound reader (always a named tenant) go down this index:
-- newest first within the tenant, as audit_logs_occurred_at_idx does for
-- everyone. Partial, so that a single-tenant deployment neither stores nor
-- maintains an entry per row; building it reads audit_logs once (a
-- sequential scan, under a lock that holds writes back: 3 s for 10 million
-- rows on a small machine, docs/tenants.md) and writes nothing for rows
-- of the default tenant.
CREATE INDEX IF NOT EXISTS audit_logs_tenant_idx ON audit_logs (tenant, occurred_at, id) WHERE tenant <> '';

--bun:split

-- A stored report's tenant: NULL for a report over every tenant (the only
-- kind a single-tenant deployment makes), else the one tenant it counts.
ALTER TABLE audit_reports ADD COLUMN IF NOT EXISTS tenant text;

--bun:split

CREATE INDEX IF NOT EXISTS audit_reports_tenant_idx ON audit_reports (tenant, id) WHERE tenant IS NOT NULL;
