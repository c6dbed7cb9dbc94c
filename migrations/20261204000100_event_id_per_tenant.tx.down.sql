-- Back to a primary key on id alone. It fails, with the id it found
-- twice, while two tenants hold events of the same id: remove or rename
-- one of them first.
ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS audit_logs_pkey;

--bun:split

ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_pkey PRIMARY KEY (id);
