ALTER TABLE audit_hours DROP COLUMN IF EXISTS changed_at;
