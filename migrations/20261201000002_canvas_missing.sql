-- Objects SIS rows name that Canvas does not have (CONTRACT v2 "SIS rows that name what Canvas lacks"): remembered,
-- so that later cycles skip those rows with a reason (after one cheap lookup) instead of planning a change that
-- fails the same way every cycle.
CREATE TABLE rostersync.canvas_missing (
    kind       text NOT NULL CHECK (kind IN ('user', 'section')),
    sis_id     text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, sis_id)
);
