-- Changed hours, append-only (docs/operations.md#report-rollups). Every
-- transaction that inserts or deletes rows of audit_logs appends one row
-- per UTC hour it changed, instead of bumping audit_hours.version: an
-- insert takes no row lock, so two flushes of one hour never wait on each
-- other. An hour (or span) with a change row is stale in any snapshot that
-- sees the row. The roller folds the change rows into audit_hours (deletes
-- them and bumps the version of their hours, in one statement) before it
-- rolls; audit_hours.version is thereafter bumped by the roller alone (and
-- by anything that changes rows around auditq, which stays valid).
CREATE TABLE IF NOT EXISTS audit_hour_changes (
    hour timestamptz NOT NULL
);

--bun:split

CREATE INDEX IF NOT EXISTS audit_hour_changes_hour_idx ON audit_hour_changes (hour);
