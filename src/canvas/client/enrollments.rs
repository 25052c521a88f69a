//! Enrollment reads and writes. A create is not retried blindly: a POST that failed may have been applied, so the
//! enrollment is looked up before it is sent again.

use reqwest::Method;

use super::{Body, CanvasClient, UserRef, decode};
use crate::canvas::error::CanvasError;
use crate::canvas::model::Enrollment;
use crate::canvas::path::sis_segment;
use crate::canvas::status::Attempt;

/// Where a new enrollment goes: a course's default section, or a section (facts §1: POST on the section route
/// takes the section's course).
#[derive(Debug, Clone, Copy)]
pub enum EnrollTarget<'a> {
    CourseDefaultSection { sis_course_id: &'a str },
    SisSection { sis_section_id: &'a str },
    Section { section_id: u64 },
}

impl CanvasClient {
    /// Every enrollment of a course in the given states, in one paginated listing. `Ok(None)` when Canvas has no
    /// such course (404).
    pub async fn list_course_enrollments(
        &self,
        sis_course_id: &str,
        states: &[&str],
    ) -> Result<Option<Vec<Enrollment>>, CanvasError> {
        let mut url = self.api_url(&format!(
            "courses/{}/enrollments",
            sis_segment("sis_course_id", sis_course_id)
        ))?;
        {
            let mut q = url.query_pairs_mut();
            for s in states {
                q.append_pair("state[]", s);
            }
            q.append_pair("per_page", &self.opts.per_page.to_string());
        }
        match self.list_all(url).await {
            Ok(rows) => Ok(Some(rows)),
            Err(CanvasError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A user's enrollments in the given states (admin caller: literal states, facts §1).
    pub async fn list_user_enrollments(
        &self,
        user: UserRef<'_>,
        states: &[&str],
    ) -> Result<Vec<Enrollment>, CanvasError> {
        let mut url = self.api_url(&format!("users/{}/enrollments", self.user_segment(user)))?;
        {
            let mut q = url.query_pairs_mut();
            for s in states {
                q.append_pair("state[]", s);
            }
            q.append_pair("per_page", &self.opts.per_page.to_string());
        }
        self.list_all(url).await
    }

    /// Creates (or, for a row Canvas already has in another state, revives) an enrollment: `enrollment_state` as
    /// given (facts §10: omitting it would leave the user `invited`), `notify=false`.
    ///
    /// A POST that times out or gets a 5xx may still have been applied, so before it is sent again the user's
    /// enrollments are read back; if the enrollment is there in the wanted state, that is the answer.
    pub async fn create_enrollment(
        &self,
        target: EnrollTarget<'_>,
        user: UserRef<'_>,
        role_id: u64,
        state: &str,
    ) -> Result<Enrollment, CanvasError> {
        let path = match target {
            EnrollTarget::CourseDefaultSection { sis_course_id } => format!(
                "courses/{}/enrollments",
                sis_segment("sis_course_id", sis_course_id)
            ),
            EnrollTarget::SisSection { sis_section_id } => format!(
                "sections/{}/enrollments",
                sis_segment("sis_section_id", sis_section_id)
            ),
            EnrollTarget::Section { section_id } => format!("sections/{section_id}/enrollments"),
        };
        let url = self.api_url(&path)?;
        let form = vec![
            ("enrollment[user_id]".to_owned(), self.user_param(user)),
            ("enrollment[role_id]".to_owned(), role_id.to_string()),
            ("enrollment[enrollment_state]".to_owned(), state.to_owned()),
            ("enrollment[notify]".to_owned(), "false".to_owned()),
        ];
        let mut backoff = self.backoff();
        loop {
            match self
                .attempt(Method::POST, url.clone(), Some(Body::Form(&form)))
                .await
            {
                Ok(answer) => return decode(&answer.body, "enrollment"),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable { reason, error }) => {
                    let Some(delay) =
                        self.next_delay(&mut backoff, reason, &Method::POST, url.path())
                    else {
                        return Err(error);
                    };
                    tokio::time::sleep(delay).await;
                    // Throttled requests never ran; anything else may have been applied.
                    if reason != "throttled"
                        && let Some(found) = self.find_created(target, user, role_id, state).await?
                    {
                        tracing::info!(
                            enrollment.id = found.id,
                            "enrollment create had been applied before the error"
                        );
                        return Ok(found);
                    }
                }
            }
        }
    }

    async fn find_created(
        &self,
        target: EnrollTarget<'_>,
        user: UserRef<'_>,
        role_id: u64,
        state: &str,
    ) -> Result<Option<Enrollment>, CanvasError> {
        let rows = self.list_user_enrollments(user, &[state]).await?;
        Ok(rows.into_iter().find(|e| {
            e.role_id == role_id
                && e.enrollment_state == state
                && e.associated_user_id.is_none()
                && match target {
                    EnrollTarget::CourseDefaultSection { sis_course_id } => {
                        e.sis_course_id.as_deref() == Some(sis_course_id)
                            && e.sis_section_id.is_none()
                    }
                    EnrollTarget::SisSection { sis_section_id } => {
                        e.sis_section_id.as_deref() == Some(sis_section_id)
                    }
                    EnrollTarget::Section { section_id } => e.course_section_id == section_id,
                }
        }))
    }

    /// `DELETE /courses/:course_id/enrollments/:id?task=` (conclude, delete, inactivate). `Ok(None)` when Canvas
    /// no longer has it (404: already gone, facts §1 "deleting twice → 404").
    pub async fn delete_enrollment(
        &self,
        course_id: u64,
        enrollment_id: u64,
        task: &str,
    ) -> Result<Option<Enrollment>, CanvasError> {
        let mut url = self.api_url(&format!("courses/{course_id}/enrollments/{enrollment_id}"))?;
        url.query_pairs_mut().append_pair("task", task);
        match self.request(Method::DELETE, url, None).await {
            Ok(answer) => decode(&answer.body, "enrollment").map(Some),
            Err(CanvasError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /courses/:course_id/enrollments/:id/reactivate` (only from `inactive`, facts §1).
    pub async fn reactivate_enrollment(
        &self,
        course_id: u64,
        enrollment_id: u64,
    ) -> Result<Enrollment, CanvasError> {
        let url = self.api_url(&format!(
            "courses/{course_id}/enrollments/{enrollment_id}/reactivate"
        ))?;
        let answer = self.request(Method::PUT, url, None).await?;
        decode(&answer.body, "enrollment")
    }
}
