-- Report rollups (README "Reports and search", "How reports stay fast").
-- audit_hours has one row per UTC hour that ever held an event. Every
-- transaction that inserts or deletes rows of audit_logs bumps version of
-- their hours as its last statement; the roller recomputes an hour's rollup
-- rows under that row's lock and records the version it saw in
-- rolled_version. An hour is fresh, and its rollup rows equal its rows of
-- audit_logs, exactly when version = rolled_version in the same snapshot;
-- reports read fresh hours (and fresh spans, below) from the rollups and
-- everything else raw. Updated on every write: room for HOT updates.
CREATE TABLE IF NOT EXISTS audit_hours (
    hour           timestamptz PRIMARY KEY,
    version        bigint      NOT NULL DEFAULT 1,
    rolled_version bigint      NOT NULL DEFAULT 0
) WITH (fillfactor = 50);

--bun:split

-- Events per hour and action, and how many of them failed.
CREATE TABLE IF NOT EXISTS audit_rollup_actions (
    hour   timestamptz NOT NULL,
    action text        NOT NULL,
    n      bigint      NOT NULL,
    failed bigint      NOT NULL,
    PRIMARY KEY (hour, action)
);

--bun:split

-- Events per hour and user; system events (no user) are left out.
CREATE TABLE IF NOT EXISTS audit_rollup_users (
    hour    timestamptz NOT NULL,
    user_id text        NOT NULL,
    n       bigint      NOT NULL,
    PRIMARY KEY (hour, user_id)
);

--bun:split

-- Events per hour and resource type.
CREATE TABLE IF NOT EXISTS audit_rollup_resources (
    hour          timestamptz NOT NULL,
    resource_type text        NOT NULL,
    n             bigint      NOT NULL,
    PRIMARY KEY (hour, resource_type)
);

--bun:split

-- Spans: whole UTC days and months, rolled up from the hourly rollups once
-- all their hours are fresh, so that long reports sum a few rows per user
-- instead of one per user and hour. hours_version is the sum of the
-- versions of the span's hours when it was rolled: versions only grow, so
-- the span is fresh exactly while that sum is unchanged.
CREATE TABLE IF NOT EXISTS audit_spans (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    hours_version bigint      NOT NULL,
    UNIQUE (starts_at, ends_at)
);

--bun:split

CREATE TABLE IF NOT EXISTS audit_span_actions (
    span_id bigint NOT NULL,
    action  text   NOT NULL,
    n       bigint NOT NULL,
    failed  bigint NOT NULL,
    PRIMARY KEY (span_id, action)
);

--bun:split

CREATE TABLE IF NOT EXISTS audit_span_users (
    span_id bigint NOT NULL,
    user_id text   NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (span_id, user_id)
);

--bun:split

CREATE TABLE IF NOT EXISTS audit_span_resources (
    span_id       bigint NOT NULL,
    resource_type text   NOT NULL,
    n             bigint NOT NULL,
    PRIMARY KEY (span_id, resource_type)
);

--bun:split

-- Hours of rows stored before this migration: stale (version 1, rolled 0),
-- so reports read them raw until the roller has filled them.
INSERT INTO audit_hours (hour)
SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC') FROM audit_logs
ON CONFLICT (hour) DO NOTHING;
