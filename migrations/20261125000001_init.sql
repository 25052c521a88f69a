-- rostersync's own schema: one row per cycle, one row per decided change. CONTRACT.md "Tables".
CREATE SCHEMA IF NOT EXISTS rostersync;

CREATE TABLE rostersync.sync_runs (
    id          text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL
                CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'safety_tripped')),
    dry_run     boolean NOT NULL DEFAULT false,
    counts      jsonb NOT NULL DEFAULT '{}'::jsonb,
    error       text
);
CREATE INDEX sync_runs_started_at ON rostersync.sync_runs (started_at DESC);

CREATE TABLE rostersync.audit_log (
    id                   bigserial PRIMARY KEY,
    run_id               text NOT NULL REFERENCES rostersync.sync_runs (id),
    occurred_at          timestamptz NOT NULL DEFAULT now(),
    action               text NOT NULL CHECK (action IN ('enroll', 'remove', 'change_role', 'change_state')),
    user_id              text,
    course_id            text,
    section_id           text,
    role_before          text,
    role_after           text,
    state_before         text,
    state_after          text,
    canvas_enrollment_id bigint,
    outcome              text NOT NULL CHECK (outcome IN ('planned', 'applied', 'failed', 'skipped')),
    error                text,
    dry_run              boolean NOT NULL DEFAULT false,
    -- Beyond the contract: the enrollment a change_role created, Canvas's HTTP status on failure, and the outcome
    -- of each step of a two-step change.
    new_canvas_enrollment_id bigint,
    http_status          integer,
    steps                jsonb
);
CREATE INDEX audit_log_run_id ON rostersync.audit_log (run_id);
CREATE INDEX audit_log_planned ON rostersync.audit_log (run_id) WHERE outcome = 'planned' AND NOT dry_run;
CREATE INDEX audit_log_user ON rostersync.audit_log (user_id, occurred_at DESC);
