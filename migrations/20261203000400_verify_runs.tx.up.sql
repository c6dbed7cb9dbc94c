-- The results of "auditq verify" (the whole trail): one row per finished
-- verification, newest last; audit.admin.status reports the newest
-- (docs/operations.md, "Verifying the trail"). A row per run (a nightly
-- run adds 365 small rows a year).
CREATE TABLE IF NOT EXISTS audit_verify_runs (
    id             bigserial   PRIMARY KEY,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    ok             boolean     NOT NULL,
    events         bigint      NOT NULL,
    batches        bigint      NOT NULL,
    batch_seq      bigint      NOT NULL,
    checkpoints    bigint      NOT NULL,
    checkpoint_seq bigint      NOT NULL,
    uncovered      bigint      NOT NULL,
    failure_count  bigint      NOT NULL,
    first_failure  text,
    trigger        text        NOT NULL
);
