-- When a fold of change rows last bumped each hour's version
-- (docs/operations.md#report-rollups). The roller rolls an hour within its
-- lag (the current and the previous hour) once it has not changed for a
-- while, so reports after a burst of writes read its rollup rather than its
-- rows; hours that keep changing are left to raw reads as before. Only a
-- hint: freshness is still version = rolled_version and no change row.
ALTER TABLE audit_hours ADD COLUMN IF NOT EXISTS changed_at timestamptz NOT NULL DEFAULT now();
