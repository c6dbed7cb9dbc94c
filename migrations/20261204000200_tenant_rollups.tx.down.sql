-- Back to rollups over every tenant together: the hours and spans holding
-- rows of a named tenant are marked stale (recounted by the roller, read
-- raw until then), their named tenants' rows dropped, and the keys and
-- columns restored.
UPDATE audit_hours SET rolled_version = 0 WHERE hour IN (
    SELECT hour FROM audit_rollup_actions WHERE tenant <> ''
    UNION SELECT hour FROM audit_rollup_users WHERE tenant <> ''
    UNION SELECT hour FROM audit_rollup_resources WHERE tenant <> '');

--bun:split

UPDATE audit_spans SET hours_version = -1 WHERE id IN (
    SELECT span_id FROM audit_span_actions WHERE tenant <> ''
    UNION SELECT span_id FROM audit_span_users WHERE tenant <> ''
    UNION SELECT span_id FROM audit_span_resources WHERE tenant <> '');

--bun:split

DELETE FROM audit_rollup_actions WHERE tenant <> '';

--bun:split

DELETE FROM audit_rollup_users WHERE tenant <> '';

--bun:split

DELETE FROM audit_rollup_resources WHERE tenant <> '';

--bun:split

DELETE FROM audit_span_actions WHERE tenant <> '';

--bun:split

DELETE FROM audit_span_users WHERE tenant <> '';

--bun:split

DELETE FROM audit_span_resources WHERE tenant <> '';

--bun:split

ALTER TABLE audit_rollup_actions DROP CONSTRAINT IF EXISTS audit_rollup_actions_pkey, DROP COLUMN IF EXISTS tenant, ADD PRIMARY KEY (hour, action);

--bun:split

ALTER TABLE audit_rollup_users DROP CONSTRAINT IF EXISTS audit_rollup_users_pkey, DROP COLUMN IF EXISTS tenant, ADD PRIMARY KEY (hour, user_id);

--bun:split

ALTER TABLE audit_rollup_resources DROP CONSTRAINT IF EXISTS audit_rollup_resources_pkey, DROP COLUMN IF EXISTS tenant, ADD PRIMARY KEY (hour, resource_type);

--bun:split

ALTER TABLE audit_span_actions DROP CONSTRAINT IF EXISTS audit_span_actions_pkey, DROP COLUMN IF EXISTS tenant, ADD PRIMARY KEY (span_id, action);

--bun:split

ALTER TABLE audit_span_users DROP CONSTRAINT IF EXISTS audit_span_users_pkey, DROP COLUMN IF EXISTS tenant, ADD PRIMARY KEY (span_id, user_id);

--bun:split

ALTER TABLE audit_span_resources DROP CONSTRAINT IF EXISTS audit_span_resources_pkey, DROP COLUMN IF EXISTS tenant, ADD PRIMARY KEY (span_id, resource_type);
