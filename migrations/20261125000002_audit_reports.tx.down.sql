DROP TABLE IF EXISTS audit_reports;
