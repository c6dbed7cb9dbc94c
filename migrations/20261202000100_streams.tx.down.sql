DROP INDEX IF EXISTS audit_logs_seal_batch_idx;

--bun:split

DROP TABLE IF EXISTS audit_streams;
