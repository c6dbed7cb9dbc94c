-- Report rollups per tenant (docs/tenants.md#reports-exports-retention).
-- Every rollup row counts the events of one tenant ('' the default), so a
-- tenant's report is served from the rollups and the report over every
-- tenant sums them. Adding a column with a constant default changes the
-- catalogue only; each primary key gains the tenant and is rebuilt, which
-- reads the rollup table once (docs/tenants.md#storage-and-its-cost).
-- Existing rows become the default tenant's.
ALTER TABLE audit_rollup_actions ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '',
    DROP CONSTRAINT IF EXISTS audit_rollup_actions_pkey, ADD PRIMARY KEY (hour, tenant, action);

--bun:split

ALTER TABLE audit_rollup_users ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '',
    DROP CONSTRAINT IF EXISTS audit_rollup_users_pkey, ADD PRIMARY KEY (hour, tenant, user_id);

--bun:split

ALTER TABLE audit_rollup_resources ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '',
    DROP CONSTRAINT IF EXISTS audit_rollup_resources_pkey, ADD PRIMARY KEY (hour, tenant, resource_type);

--bun:split

ALTER TABLE audit_span_actions ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '',
    DROP CONSTRAINT IF EXISTS audit_span_actions_pkey, ADD PRIMARY KEY (span_id, tenant, action);

--bun:split

ALTER TABLE audit_span_users ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '',
    DROP CONSTRAINT IF EXISTS audit_span_users_pkey, ADD PRIMARY KEY (span_id, tenant, user_id);

--bun:split

ALTER TABLE audit_span_resources ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '',
    DROP CONSTRAINT IF EXISTS audit_span_resources_pkey, ADD PRIMARY KEY (span_id, tenant, resource_type);

--bun:split

-- Rollup rows of hours that hold events of a named tenant counted every
-- tenant together: bump those hours (in hour order, as writers do), so
-- that reports read them raw, and the spans holding them stop being
-- fresh, until the roller has recounted them per tenant. Found down
-- audit_logs_tenant_idx: nothing to read in a single-tenant deployment.
INSERT INTO audit_hours (hour)
SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC') FROM audit_logs WHERE tenant <> '' ORDER BY 1
ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1;
