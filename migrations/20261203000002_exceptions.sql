-- v2 (CONTRACT.md "Explain, undo, pause, exceptions, damping"): enrollments rostersync never touches. An active
-- exception (not removed, not expired) makes the planner leave that user's enrollments in that scope as they are.
-- Rows are never deleted: each add and remove stays here as the audit trail of who excepted whom, and why.
CREATE TABLE rostersync.exceptions (
    id          bigserial PRIMARY KEY,
    -- The SIS user id as the operator typed it (compared case-insensitively under sis.user_id_kind = sis_login_id).
    user_id     text NOT NULL,
    -- The SIS course id; NULL = every course.
    course_id   text,
    reason      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL = until removed.
    expires_at  timestamptz,
    removed_by  text,
    removed_at  timestamptz,
    CHECK ((removed_by IS NULL) = (removed_at IS NULL))
);
-- Each cycle reads the active ones.
CREATE INDEX exceptions_active ON rostersync.exceptions (user_id) WHERE removed_at IS NULL;
