-- audit_logs: one row per audited event. Column names follow the system
-- auditq replaces (snake_case), with occurred_at (when it happened, client
-- time) and received_at (when auditq received it) where that system has a
-- single timestamp.
CREATE TABLE IF NOT EXISTS audit_logs (
    id            text        PRIMARY KEY,
    user_id       text,
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   text        NOT NULL,
    details       jsonb,
    ip_address    inet,
    user_agent    text,
    session_id    text,
    request_id    text,
    success       boolean     NOT NULL DEFAULT true,
    error_message text,
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

--bun:split

-- Time ranges (reports, retention, searches without a better filter) and the
-- newest-first keyset order of searches: (occurred_at, id) scanned backwards.
CREATE INDEX IF NOT EXISTS audit_logs_occurred_at_idx ON audit_logs (occurred_at, id);

--bun:split

-- "What did this user do?": searches by user, newest first. System events
-- (no user) are left out of the index.
CREATE INDEX IF NOT EXISTS audit_logs_user_idx ON audit_logs (user_id, occurred_at, id) WHERE user_id IS NOT NULL;

--bun:split

-- "Who touched this resource?": searches by resource type and id.
CREATE INDEX IF NOT EXISTS audit_logs_resource_idx ON audit_logs (resource_type, resource_id, occurred_at, id);
