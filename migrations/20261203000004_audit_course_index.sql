-- `rostersync audit` (CONTRACT v2 "Commands"): newest-first reads of the audit log by course, or by time alone,
-- stay fast on a log of millions of rows: each index yields rows in the command's order (occurred_at DESC, id DESC),
-- so the first row is written without sorting the log. `--user` has audit_log_user, `--run` audit_log_run_id.
CREATE INDEX audit_log_course ON rostersync.audit_log (course_id, occurred_at DESC, id DESC);
CREATE INDEX audit_log_occurred ON rostersync.audit_log (occurred_at DESC, id DESC);
