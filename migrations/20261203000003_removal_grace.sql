-- Flap damping (reconcile.removal_grace_cycles): each access-removing change some cycle decided but deferred, and how
-- many consecutive cycles have decided it. A change not decided again by a run that covered its course is
-- forgotten, so it starts over.
CREATE TABLE rostersync.removal_grace (
    change_key  text PRIMARY KEY,
    course_id   text NOT NULL,
    cycles      integer NOT NULL CHECK (cycles >= 1),
    first_run   text NOT NULL,
    last_run    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX removal_grace_course ON rostersync.removal_grace (course_id);
