DROP TABLE IF EXISTS audit_kek_state;

--bun:split

ALTER TABLE audit_subject_keys RESET (fillfactor);
