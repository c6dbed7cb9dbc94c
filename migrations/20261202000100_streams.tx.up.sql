-- Log streams (docs/streams.md): one row per configured stream, its
-- durable cursor in the commit order (the chain positions of
-- audit_batches) and its state. next_seq is the next batch to deliver,
-- after_leaf the last leaf of it already delivered (-1: none). owner and
-- lease_until let one instance at a time deliver a stream.
CREATE TABLE IF NOT EXISTS audit_streams (
    name          text        PRIMARY KEY,
    next_seq      bigint      NOT NULL DEFAULT 1,
    after_leaf    integer     NOT NULL DEFAULT -1,
    state         text        NOT NULL DEFAULT 'active',
    last_error    text,
    last_error_at timestamptz,
    delivered_at  timestamptz,
    delivered     bigint      NOT NULL DEFAULT 0,
    failed        bigint      NOT NULL DEFAULT 0,
    skipped       bigint      NOT NULL DEFAULT 0,
    owner         text,
    lease_until   timestamptz
);

--bun:split

-- The rows of a batch, read by the streams in commit order. Every row of a
-- batch has the same key, and batch ids grow with time: a small index,
-- appended to at its right edge.
CREATE INDEX IF NOT EXISTS audit_logs_seal_batch_idx ON audit_logs (seal_batch);
