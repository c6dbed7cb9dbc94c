-- Going down would make the code before it compute 32-byte pseudonyms for
-- a deployment whose pseudonyms hold 16: refused while such a key exists.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_personal_keys WHERE pseudonym_bytes <> 32) THEN
        RAISE EXCEPTION 'the pseudonym key makes 16-byte pseudonyms, which the code before 20261207002000 cannot make: cannot go down';
    END IF;
END $$;

--bun:split

ALTER TABLE audit_personal_keys DROP COLUMN IF EXISTS pseudonym_bytes;
