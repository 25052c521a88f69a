-- Fresh within a minute: each SIS course's fingerprint as the last run that reconciled it read it, so that the
-- leader's freshness check (and a new leader after a restart or failover) knows which courses changed since.
CREATE TABLE rostersync.course_fingerprints (
    course_id   text PRIMARY KEY,
    fingerprint text NOT NULL,
    run_id      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
