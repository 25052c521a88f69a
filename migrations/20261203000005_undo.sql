-- `rostersync undo RUN_ID`: the run that reversed another (its source_run_id stays the run an `apply` made).
ALTER TABLE rostersync.sync_runs ADD COLUMN undo_of text;
CREATE INDEX sync_runs_undo_of ON rostersync.sync_runs (undo_of) WHERE undo_of IS NOT NULL;
