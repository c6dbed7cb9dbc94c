-- The length of the user pseudonyms a pseudonym key makes, in bytes of
-- HMAC-SHA256 (docs/personal-data.md): the key stored before this
-- migration made every pseudonym stored so far of all 32 bytes and keeps
-- doing so, so that a deployment's pseudonyms of one user stay one; a key
-- created afterwards makes them of 16 (128 bits).
ALTER TABLE audit_personal_keys ADD COLUMN IF NOT EXISTS pseudonym_bytes smallint NOT NULL DEFAULT 32;

--bun:split

ALTER TABLE audit_personal_keys ALTER COLUMN pseudonym_bytes SET DEFAULT 16;
