-- audit_reports: every generated compliance report, with the request it
-- answered and its result exactly as returned. Listed newest first by id
-- (the primary key index serves the keyset paging of audit.report.list).
CREATE TABLE IF NOT EXISTS audit_reports (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_type  text        NOT NULL,
    request      jsonb       NOT NULL,
    result       jsonb       NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    time_zone    text        NOT NULL,
    generated_at timestamptz NOT NULL,
    -- request, job or schedule
    trigger      text        NOT NULL,
    -- The audit.report.generate message that produced it (NULL for
    -- requests): a redelivered job finds its report instead of storing a
    -- second one.
    job_id       text        UNIQUE,
    CHECK (period_start < period_end)
);
