-- Tamper evidence (docs/tamper-evidence.md). Each committed write is a
-- batch: its rows carry the batch id and their leaf index, and the batch
-- record keeps the leaves' hashes, their Merkle root and its place in the
-- hash chain. No index is added to audit_logs: verification streams the
-- whole table and proofs find a row by its primary key.
ALTER TABLE audit_logs ADD COLUMN IF NOT EXISTS seal_batch bigint, ADD COLUMN IF NOT EXISTS seal_leaf integer;

--bun:split

-- id is what the rows carry, drawn at random by the writer before they are
-- written (no round trip). The writer commits the batch with its rows;
-- seq, prev_hash and hash (its place in the chain) are NULL until the
-- chainer (auditq_chain_batches) links it, under the chain-head row lock.
CREATE TABLE IF NOT EXISTS audit_batches (
    id         bigint      PRIMARY KEY,
    seq        bigint,
    sealed_at  timestamptz NOT NULL,
    leaf_count integer     NOT NULL,
    leaves     bytea       NOT NULL, -- leaf_count SHA-256 hashes, 32 bytes each
    root       bytea       NOT NULL,
    prev_hash  bytea,
    hash       bytea,
    signature  bytea       NOT NULL  -- Ed25519, by the writer, over the batch body
);

--bun:split

-- The batches not yet chained: few, and found at once.
CREATE INDEX IF NOT EXISTS audit_batches_pending_idx ON audit_batches (sealed_at, id) WHERE seq IS NULL;

--bun:split

CREATE UNIQUE INDEX IF NOT EXISTS audit_batches_seq_idx ON audit_batches (seq);

--bun:split

-- Hashes do not compress: store them out of line without trying.
ALTER TABLE audit_batches ALTER COLUMN leaves SET STORAGE EXTERNAL;

--bun:split

-- One row per chain ('batches', 'deletions'): its newest position and hash.
-- Every batch commit updates the 'batches' row as its last statement, so
-- the row lock orders all writers, of every instance, into one chain.
CREATE TABLE IF NOT EXISTS audit_chain_heads (
    chain     text   PRIMARY KEY,
    seq       bigint NOT NULL,
    hash      bytea  NOT NULL,
    prev_hash bytea  NOT NULL
) WITH (fillfactor = 10);

--bun:split

INSERT INTO audit_chain_heads (chain, seq, hash, prev_hash) VALUES
    ('batches', 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')),
    ('deletions', 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))
ON CONFLICT (chain) DO NOTHING;

--bun:split

-- Signed records of the leaves retention deleted.
CREATE TABLE IF NOT EXISTS audit_deletions (
    seq         bigint      PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    cutoff      timestamptz NOT NULL,
    criteria    text        NOT NULL,
    batch_ids   bigint[]    NOT NULL,
    leaf_idx    integer[]   NOT NULL,
    key_id      text        NOT NULL,
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL,
    signature   bytea       NOT NULL
);

--bun:split

-- Signed checkpoints (also published to the JetStream stream AUDIT_CHECKPOINTS).
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq           bigint      PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    reason        text        NOT NULL,
    batch_seq     bigint      NOT NULL,
    batch_hash    bytea       NOT NULL,
    range_from    bigint      NOT NULL,
    range_root    bytea       NOT NULL,
    deletion_seq  bigint      NOT NULL,
    deletion_hash bytea       NOT NULL,
    key_id        text        NOT NULL,
    prev_hash     bytea       NOT NULL,
    hash          bytea       NOT NULL,
    signature     bytea       NOT NULL
);

--bun:split

CREATE INDEX IF NOT EXISTS audit_checkpoints_batch_seq_idx ON audit_checkpoints (batch_seq);

--bun:split

-- auditq_chain_batches links up to max_batches committed but unchained
-- batches into the chain, oldest first, under the chain-head row lock, and
-- returns the new head and how many it linked. A batch's hash is SHA-256 of
--   auditq batch v1\nseq <seq>\nprev <hex>\nid <id>\nsealed <time>\nleaves <n>\nroot <hex>\n
-- exactly as evidence.BatchHash computes it (docs/tamper-evidence.md).
CREATE OR REPLACE FUNCTION auditq_chain_batches(max_batches integer)
RETURNS TABLE (head_seq bigint, head_hash bytea, linked integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    s  bigint;
    h  bytea;
    p  bytea;
    n  integer := 0;
    b  record;
BEGIN
    SELECT c.seq, c.hash INTO s, h FROM audit_chain_heads c WHERE c.chain = 'batches' FOR UPDATE;
    FOR b IN SELECT a.id, a.sealed_at, a.leaf_count, a.root FROM audit_batches a
             WHERE a.seq IS NULL ORDER BY a.sealed_at, a.id LIMIT max_batches
    LOOP
        s := s + 1;
        p := h;
        h := sha256(convert_to(
            'auditq batch v1' || E'\n' ||
            'seq ' || s::text || E'\n' ||
            'prev ' || encode(p, 'hex') || E'\n' ||
            'id ' || b.id::text || E'\n' ||
            'sealed ' || to_char(b.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || E'\n' ||
            'leaves ' || b.leaf_count::text || E'\n' ||
            'root ' || encode(b.root, 'hex') || E'\n', 'UTF8'));
        UPDATE audit_batches SET seq = s, prev_hash = p, hash = h WHERE id = b.id;
        n := n + 1;
    END LOOP;
    IF n > 0 THEN
        UPDATE audit_chain_heads SET seq = s, prev_hash = p, hash = h WHERE chain = 'batches';
    END IF;
    RETURN QUERY SELECT s, h, n;
END
$fn$;
