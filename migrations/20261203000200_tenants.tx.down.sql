DROP INDEX IF EXISTS audit_reports_tenant_idx;

--bun:split

ALTER TABLE audit_reports DROP COLUMN IF EXISTS tenant;

--bun:split

DROP INDEX IF EXISTS audit_logs_tenant_idx;

--bun:split

ALTER TABLE audit_logs DROP COLUMN IF EXISTS tenant;
