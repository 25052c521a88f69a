-- Pause and resume (CONTRACT v2 "Explain, undo, pause, exceptions, damping"): while a pause is in force, cycles plan
-- and audit but change nothing. Rows are never deleted: `resume` sets resumed_by/resumed_at on the pause it ends,
-- and a pause whose `until` has passed simply no longer holds. In force = resumed_at IS NULL AND (until IS NULL OR
-- until > now()).
CREATE TABLE rostersync.pauses (
    id            bigserial PRIMARY KEY,
    paused_by     text NOT NULL,
    reason        text,
    paused_at     timestamptz NOT NULL DEFAULT now(),
    until         timestamptz,
    resumed_by    text,
    resumed_at    timestamptz,
    -- Set on a pause made by `undo`: the run whose changes were undone.
    source_run_id text,
    -- Who ran the command, beyond the typed name: database role, session user, OS user and host.
    paused_as     text,
    resumed_as    text,
    CHECK (until IS NULL OR until > paused_at),
    CHECK ((resumed_by IS NULL) = (resumed_at IS NULL))
);
CREATE INDEX pauses_open ON rostersync.pauses (paused_at DESC) WHERE resumed_at IS NULL;
