DROP TABLE IF EXISTS audit_span_resources;

--bun:split

DROP TABLE IF EXISTS audit_span_users;

--bun:split

DROP TABLE IF EXISTS audit_span_actions;

--bun:split

DROP TABLE IF EXISTS audit_spans;

--bun:split

DROP TABLE IF EXISTS audit_rollup_resources;

--bun:split

DROP TABLE IF EXISTS audit_rollup_users;

--bun:split

DROP TABLE IF EXISTS audit_rollup_actions;

--bun:split

DROP TABLE IF EXISTS audit_hours;
