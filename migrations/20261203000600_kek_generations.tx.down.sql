DROP TABLE IF EXISTS audit_kek_state;
