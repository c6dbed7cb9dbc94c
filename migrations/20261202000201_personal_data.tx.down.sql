DROP TABLE IF EXISTS audit_erasures;

--bun:split

DROP TABLE IF EXISTS audit_personal_keys;

--bun:split

DROP TABLE IF EXISTS audit_subject_keys;

--bun:split

ALTER TABLE audit_logs DROP COLUMN IF EXISTS pseudonymous, DROP COLUMN IF EXISTS personal;
