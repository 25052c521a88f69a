//! [`OpenEdxError`]: what can go wrong talking to Open edX, each variant saying what an operator should do. The
//! client secret and tokens never appear in one: the secret is only in the token request's form body, tokens only
//! in a header, and response texts quoted here come from Open edX's `developer_message`.

/// A failed Open edX call (or a whole write that could not start). Per-key failures of a write are not errors:
/// they are [`super::KeyOutcome`] values.
#[derive(Debug, thiserror::Error)]
pub enum OpenEdxError {
    /// The client secret could not be read (`openedx.client_secret_file`).
    #[error("Open edX client secret: {0}")]
    Secret(String),
    /// The token endpoint refused the client credentials (facts §1.3: 401 `invalid_client`).
    #[error(
        "the Open edX token endpoint refused the client credentials of `{client_id}` (HTTP {status}); check \
         openedx.client_id and openedx.client_secret"
    )]
    TokenRefused { client_id: String, status: u16 },
    /// A 401 on an API call even with a fresh token.
    #[error("Open edX refused a fresh token on {path} (HTTP 401): {message}")]
    Unauthorized { path: String, message: String },
    /// Facts §1.6: a RestrictedApplication's JWTs get 403 on every program-enrollment endpoint.
    #[error(
        "the OAuth2 application `{client_id}` is a restricted application: Open edX answers 403 to it on program \
         enrollments; use a non-restricted application whose owner is staff"
    )]
    RestrictedApplication { client_id: String },
    /// Facts §1.6: the application's owner must have `is_staff`.
    #[error(
        "the owner `{owner}` of the OAuth2 application `{client_id}` is not staff: Open edX answers 403 on program \
         enrollments; give that user is_staff or use an application owned by a staff user"
    )]
    OwnerNotStaff { client_id: String, owner: String },
    /// 404 `program_does_not_exist` (facts §2.2, §3.1): not in the LMS catalog cache (or an uppercase UUID).
    #[error("program {program_uuid} is not in the LMS catalog (404 program_does_not_exist)")]
    ProgramNotFound { program_uuid: String },
    /// 404 `invalid_course_key` (facts §3.1).
    #[error("course run key `{course_key}` cannot be parsed by Open edX (404 invalid_course_key)")]
    InvalidCourseKey { course_key: String },
    /// 404 `course_does_not_exist` (facts §3.1).
    #[error("course run {course_key} is not in the LMS catalog (404 course_does_not_exist)")]
    CourseNotFound { course_key: String },
    /// 404 `course_not_in_program` (facts §3.1): not in the program's first active curriculum.
    #[error(
        "course run {course_key} is not in the active curriculum of program {program_uuid} (404 \
         course_not_in_program)"
    )]
    CourseNotInProgram {
        program_uuid: String,
        course_key: String,
    },
    /// Throttled (429) and the retries or the `Retry-After` cap ran out (facts §7.3).
    #[error(
        "Open edX throttled {method} {path} (HTTP 429, Retry-After {retry_after_secs:?} s); retries ran out"
    )]
    Throttled {
        method: String,
        path: String,
        retry_after_secs: Option<u64>,
    },
    /// Any other status, after the retries for 5xx ran out.
    #[error("Open edX answered {method} {path} with HTTP {status}: {message}")]
    Http {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// Connection errors and timeouts, after the retries ran out.
    #[error("Open edX {method} {path}: {message} (after {attempts} attempts)")]
    Network {
        method: String,
        path: String,
        message: String,
        attempts: u32,
    },
    /// A success whose body is not the JSON the facts describe (a proxy or login page).
    #[error("Open edX {path}: the answer is not the expected JSON: {message}")]
    Decode { path: String, message: String },
    /// A pagination `next` link off the configured LMS origin: not followed (the token must not leave it).
    #[error("Open edX pagination link `{next}` leaves the configured LMS origin; not followed")]
    ForeignNext { next: String },
}

impl OpenEdxError {
    /// The reason to record when this error turns a SIS row into a `skipped` one (facts §2.2, §3.1: the program or
    /// course is not in the catalog or curriculum), or `None` when the error is not about the row.
    pub fn skip_reason(&self) -> Option<String> {
        match self {
            OpenEdxError::ProgramNotFound { .. }
            | OpenEdxError::InvalidCourseKey { .. }
            | OpenEdxError::CourseNotFound { .. }
            | OpenEdxError::CourseNotInProgram { .. } => Some(self.to_string()),
            _ => None,
        }
    }

    /// Errors about the credentials or the application: nothing else can work, the cycle (and `check`) ends.
    pub fn ends_cycle(&self) -> bool {
        matches!(
            self,
            OpenEdxError::Secret(_)
                | OpenEdxError::TokenRefused { .. }
                | OpenEdxError::Unauthorized { .. }
                | OpenEdxError::RestrictedApplication { .. }
                | OpenEdxError::OwnerNotStaff { .. }
        )
    }

    /// The HTTP status, when Open edX answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            OpenEdxError::TokenRefused { status, .. } | OpenEdxError::Http { status, .. } => {
                Some(*status)
            }
            OpenEdxError::Unauthorized { .. } => Some(401),
            OpenEdxError::RestrictedApplication { .. } | OpenEdxError::OwnerNotStaff { .. } => {
                Some(403)
            }
            OpenEdxError::ProgramNotFound { .. }
            | OpenEdxError::InvalidCourseKey { .. }
            | OpenEdxError::CourseNotFound { .. }
            | OpenEdxError::CourseNotInProgram { .. } => Some(404),
            OpenEdxError::Throttled { .. } => Some(429),
            _ => None,
        }
    }
}
