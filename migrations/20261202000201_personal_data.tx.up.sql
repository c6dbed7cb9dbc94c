-- Personal data (docs/personal-data.md). With AUDITQ_PERSONAL_DATA set to
-- pseudonymise or encrypt, user_id holds the user's keyed pseudonym
-- (pseudonymous is true) and, when encrypted, personal holds the personal
-- fields sealed under the data subject's key. Both are NULL on rows
-- written with the setting off. No index: searches by user keep using
-- audit_logs_user_idx on user_id.
ALTER TABLE audit_logs ADD COLUMN IF NOT EXISTS pseudonymous boolean, ADD COLUMN IF NOT EXISTS personal bytea;

--bun:split

-- One key per data subject (its pseudonym), 32 random bytes wrapped under
-- the key-encryption key (kek_id names it); user_sealed is the user id
-- sealed under the subject key, for reports that show top users. Erasure
-- deletes the row: the subject's events can no longer be decrypted. A
-- subject seen again after an erasure gets a new key (a new id).
CREATE TABLE IF NOT EXISTS audit_subject_keys (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pseudonym   text        NOT NULL UNIQUE,
    wrapped     bytea       NOT NULL,
    kek_id      text        NOT NULL,
    user_sealed bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

--bun:split

-- Keys of the deployment wrapped under the key-encryption key: the
-- pseudonym key (name 'pseudonym'), HMAC-SHA256 key of every pseudonym.
CREATE TABLE IF NOT EXISTS audit_personal_keys (
    name       text        PRIMARY KEY,
    wrapped    bytea       NOT NULL,
    kek_id     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

--bun:split

-- Erasures: recorded (pending) before the erasure event is written and the
-- subject's keys destroyed; completed_at is set in the transaction that
-- destroys them. A start completes every pending erasure.
CREATE TABLE IF NOT EXISTS audit_erasures (
    event_id     text        PRIMARY KEY,
    pseudonym    text        NOT NULL,
    requested_at timestamptz NOT NULL,
    requested_by jsonb,
    completed_at timestamptz,
    keys_erased  integer
);

--bun:split

-- At most one pending erasure per subject.
CREATE UNIQUE INDEX IF NOT EXISTS audit_erasures_pending_idx ON audit_erasures (pseudonym) WHERE completed_at IS NULL;
