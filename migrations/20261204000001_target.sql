-- CONTRACT v2 "a second target": every audit row and run record says which target it is of. The value comes from
-- the session setting `rostersync.target` that rostersync sets on its connections (absent: canvas).
ALTER TABLE rostersync.audit_log
    ADD COLUMN IF NOT EXISTS target text NOT NULL
    DEFAULT coalesce(nullif(current_setting('rostersync.target', true), ''), 'canvas');
ALTER TABLE rostersync.sync_runs
    ADD COLUMN IF NOT EXISTS target text NOT NULL
    DEFAULT coalesce(nullif(current_setting('rostersync.target', true), ''), 'canvas');

-- What rostersync knows of Open edX learners beyond one listing: whether it has seen a program enrollment linked
-- to an account (a linked enrollment that disappears was retired, facts §6.6: never re-created), and when it last
-- wrote the program enrollment (waiting ones are re-written before Open edX's 60-day expiry, facts §6.4).
CREATE TABLE IF NOT EXISTS rostersync.openedx_learners (
    program_uuid text NOT NULL,
    student_key text NOT NULL,  -- lower-cased: keys compare case-insensitively (facts §6.5)
    seen_linked boolean NOT NULL DEFAULT false,
    written_at timestamptz,
    PRIMARY KEY (program_uuid, student_key)
);

-- The course runs rostersync has read or written in each program: read again every cycle even when the SIS no
-- longer names them, so that the run enrollments of a run the SIS dropped are deactivated, not forgotten.
CREATE TABLE IF NOT EXISTS rostersync.openedx_runs (
    program_uuid text NOT NULL,
    course_key text NOT NULL,
    PRIMARY KEY (program_uuid, course_key)
);
