DROP FUNCTION IF EXISTS auditq_chain_batches(integer);

--bun:split

DROP TABLE IF EXISTS audit_checkpoints;

--bun:split

DROP TABLE IF EXISTS audit_deletions;

--bun:split

DROP TABLE IF EXISTS audit_chain_heads;

--bun:split

DROP TABLE IF EXISTS audit_batches;

--bun:split

ALTER TABLE audit_logs DROP COLUMN IF EXISTS seal_batch, DROP COLUMN IF EXISTS seal_leaf;
