-- auditq_writer: the least-privilege PostgreSQL role auditq serve runs as.
-- (docs/operations.md, "Security"; tested by TestWriterRoleCannotUpdateAuditRows.)
--
-- Migrations run as the database owner: start auditq once with the owner's
-- AUDITQ_DATABASE_URL (it migrates at start), or after each upgrade that
-- adds a migration. Then, as the owner, in the auditq database:
--
--   psql -h HOST -U postgres -d auditq -v ON_ERROR_STOP=1 -f docs/writer-role.sql
--   psql -h HOST -U postgres -d auditq -c '\password auditq_writer'
--
-- and run the service with AUDITQ_DATABASE_URL=postgres://auditq_writer:...@HOST/auditq.
-- Re-run this script after an upgrade that adds tables. It is idempotent.
--
-- What the role may do with audit rows: read them (reports, search),
-- insert them (ingest), and delete them (the retention cleanup on
-- audit.cleanup is the only code that deletes). It may not UPDATE them,
-- TRUNCATE the table, or change any schema object: it owns nothing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditq_writer') THEN
        CREATE ROLE auditq_writer LOGIN;
    END IF;
    -- Connect, and create the per-session staging table of idempotent COPY.
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO auditq_writer', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO auditq_writer;

-- The service's bookkeeping tables (reports, tamper-evidence batches,
-- chain heads, deletion records, checkpoints, the migration list it reads
-- at start): read, insert, update.
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO auditq_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO auditq_writer;

-- The report rollups (derived from audit_logs; README "How reports stay
-- fast"): the roller replaces a changed hour's or span's rows, and folds
-- the change rows of writes and cleanups into the hours' versions.
GRANT DELETE ON audit_rollup_actions, audit_rollup_users, audit_rollup_resources,
    audit_span_actions, audit_span_users, audit_span_resources,
    audit_hour_changes TO auditq_writer;

-- Erasure (docs/personal-data.md) destroys a data subject's key: delete
-- on audit_subject_keys, and nothing else of the personal-data tables.
GRANT DELETE ON audit_subject_keys TO auditq_writer;

-- audit_logs: read, insert, delete (retention); never update.
REVOKE ALL ON audit_logs FROM auditq_writer;
GRANT SELECT, INSERT, DELETE ON audit_logs TO auditq_writer;
-- The retention cleanup locks the rows it deletes (SELECT ... FOR UPDATE
-- SKIP LOCKED, so two cleanups share the work), and PostgreSQL allows a row
-- lock only with UPDATE privilege on at least one column. Grant it on id
-- alone, and refuse every UPDATE of audit_logs with a trigger: a row lock
-- fires no trigger, an UPDATE always does.
GRANT UPDATE (id) ON audit_logs TO auditq_writer;

CREATE OR REPLACE FUNCTION auditq_refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs rows are never updated (auditq); they are deleted only by the retention cleanup'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_logs_no_update ON audit_logs;
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION auditq_refuse_update();
