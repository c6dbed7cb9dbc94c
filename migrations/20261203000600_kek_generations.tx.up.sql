-- The key-encryption key generation the stored keys are wrapped under
-- (docs/personal-data.md#key-rotation-at-each-erasure), one row. Every
-- erasure replaces the key-encryption key: in one transaction it rewraps
-- every remaining key under the new key, sets kek_id to it, and records
-- the key it replaces in retired_kek_id with retired_at NULL; retired_at
-- is set once the old key file is destroyed. The row is the decision of
-- that two-step change: a start compares kek_id with the key file (and
-- the prepared next key file) and finishes whichever step a crash
-- interrupted.
CREATE TABLE IF NOT EXISTS audit_kek_state (
    id             smallint    PRIMARY KEY CHECK (id = 1),
    kek_id         text        NOT NULL,
    generation     bigint      NOT NULL,
    rotated_at     timestamptz,
    retired_kek_id text,
    retired_at     timestamptz
);

--bun:split

-- Every erasure rewrites every row of audit_subject_keys (the rewrap):
-- free space in each page lets PostgreSQL update them in place (HOT, no
-- index entries; wrapped and kek_id are not indexed). Applies to pages
-- written from now on.
ALTER TABLE audit_subject_keys SET (fillfactor = 50);
