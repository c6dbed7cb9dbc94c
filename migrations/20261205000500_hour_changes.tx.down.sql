-- Back to bumping audit_hours directly: the pending change rows become
-- version bumps of their hours (in hour order, as writers bump), so those
-- hours stay stale until the roller has recounted them.
INSERT INTO audit_hours (hour)
SELECT DISTINCT hour FROM audit_hour_changes ORDER BY 1
ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1;

--bun:split

DROP TABLE IF EXISTS audit_hour_changes;
