DROP TABLE IF EXISTS audit_verify_runs;
