-- v2 (CONTRACT.md "The brake", "Reviewing and applying a plan"): held changes, runs made by `apply`, and who
-- approved them. Upgrades a database made by the first release in place: columns are added, nothing is rewritten.
ALTER TABLE rostersync.audit_log DROP CONSTRAINT IF EXISTS audit_log_outcome_check;
ALTER TABLE rostersync.audit_log ADD CONSTRAINT audit_log_outcome_check
    CHECK (outcome IN ('planned', 'applied', 'failed', 'skipped', 'held', 'deferred'));
ALTER TABLE rostersync.audit_log
    -- The operator whose `apply` made the change; NULL for changes a cycle made on its own.
    ADD COLUMN approved_by text,
    -- For a change made by `apply`: the audit row (of the reviewed run) it makes.
    ADD COLUMN source_audit_id bigint;
CREATE INDEX audit_log_source ON rostersync.audit_log (source_audit_id) WHERE source_audit_id IS NOT NULL;
CREATE INDEX audit_log_held ON rostersync.audit_log (run_id) WHERE outcome = 'held';

ALTER TABLE rostersync.sync_runs
    ADD COLUMN scope text NOT NULL DEFAULT 'full' CHECK (scope IN ('full', 'courses')),
    ADD COLUMN source_run_id text REFERENCES rostersync.sync_runs (id),
    ADD COLUMN approved_by text,
    ADD COLUMN reason text,
    -- Who ran the command, beyond the typed name: database role, session user, OS user and host.
    ADD COLUMN approved_as text,
    -- A trip stays in force (later cycles hold every change that takes access away) until an operator acts.
    ADD COLUMN trip_cleared_at timestamptz,
    ADD COLUMN trip_cleared_by text;
CREATE INDEX sync_runs_source ON rostersync.sync_runs (source_run_id) WHERE source_run_id IS NOT NULL;
CREATE INDEX sync_runs_open_trips ON rostersync.sync_runs (started_at DESC)
    WHERE status = 'safety_tripped' AND NOT dry_run AND trip_cleared_at IS NULL;
