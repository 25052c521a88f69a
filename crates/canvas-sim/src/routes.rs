//! The route table and the endpoint handlers. Handlers are synchronous functions over the locked
//! store; the HTTP pipeline around them (auth, throttle, faults, recording) is in `server.rs`.
//!
//! Routing is done here rather than by axum's router so that a segment may hold an encoded `/`
//! (`sis_course_id:CS%2F101`), the `.json` suffix is optional (§0), and every request — even an
//! unknown one — is recorded under a stable route template.

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use super::enrollments::{EndTask, ListScope};
use super::errors::ApiError;
use super::ids::{IdRef, decode_segment};
use super::pagination::{LinkBase, bookmark_page, numbered_page};
use super::params::{Params, truthy};
use super::render;
use super::reply::Reply;
use super::store::Store;

/// The `route` recorded for a request no template matches.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListCourseEnrollments,
    CreateCourseEnrollment,
    ListSectionEnrollments,
    CreateSectionEnrollment,
    ListUserEnrollments,
    ShowAccountEnrollment,
    EndEnrollment,
    ReactivateEnrollment,
    ListRoles,
    ShowRole,
    ShowAccount,
    ShowSelf,
    ShowUser,
    ShowCourse,
    ListSections,
    ShowSection,
    ShowCourseSection,
    StartSisImport,
    ListSisImports,
    ShowSisImport,
    StartReport,
    ListAvailableReports,
    ListReports,
    ShowReport,
    AccountFileDownload,
    FileDownload,
}

impl Endpoint {
    /// Endpoints reachable without a token (a file URL carries its own verifier).
    pub fn is_public(self) -> bool {
        self == Endpoint::FileDownload
    }
}

/// `(method, template, endpoint)`; earlier entries win, so literal segments precede `:params`.
const ROUTES: &[(&str, &str, Endpoint)] = &[
    (
        "GET",
        "/api/v1/courses/:id/enrollments",
        Endpoint::ListCourseEnrollments,
    ),
    (
        "POST",
        "/api/v1/courses/:id/enrollments",
        Endpoint::CreateCourseEnrollment,
    ),
    (
        "GET",
        "/api/v1/sections/:id/enrollments",
        Endpoint::ListSectionEnrollments,
    ),
    (
        "POST",
        "/api/v1/sections/:id/enrollments",
        Endpoint::CreateSectionEnrollment,
    ),
    (
        "GET",
        "/api/v1/users/:id/enrollments",
        Endpoint::ListUserEnrollments,
    ),
    (
        "GET",
        "/api/v1/accounts/:account_id/enrollments/:id",
        Endpoint::ShowAccountEnrollment,
    ),
    (
        "DELETE",
        "/api/v1/courses/:course_id/enrollments/:id",
        Endpoint::EndEnrollment,
    ),
    (
        "PUT",
        "/api/v1/courses/:course_id/enrollments/:id/reactivate",
        Endpoint::ReactivateEnrollment,
    ),
    ("GET", "/api/v1/accounts/:id/roles", Endpoint::ListRoles),
    (
        "GET",
        "/api/v1/accounts/:account_id/roles/:id",
        Endpoint::ShowRole,
    ),
    ("GET", "/api/v1/accounts/:id", Endpoint::ShowAccount),
    ("GET", "/api/v1/users/self", Endpoint::ShowSelf),
    ("GET", "/api/v1/users/:id", Endpoint::ShowUser),
    ("GET", "/api/v1/courses/:id", Endpoint::ShowCourse),
    (
        "GET",
        "/api/v1/courses/:id/sections",
        Endpoint::ListSections,
    ),
    // `GET /sections/:id` and `GET /courses/:course_id/sections/:id` (sections API `show`): a deleted section, or
    // one in a deleted course, is not found; a SIS id (`sis_section_id:X`) names a section as everywhere (§2).
    ("GET", "/api/v1/sections/:id", Endpoint::ShowSection),
    (
        "GET",
        "/api/v1/courses/:course_id/sections/:id",
        Endpoint::ShowCourseSection,
    ),
    (
        "POST",
        "/api/v1/accounts/:account_id/sis_imports",
        Endpoint::StartSisImport,
    ),
    (
        "GET",
        "/api/v1/accounts/:account_id/sis_imports",
        Endpoint::ListSisImports,
    ),
    (
        "GET",
        "/api/v1/accounts/:account_id/sis_imports/:id",
        Endpoint::ShowSisImport,
    ),
    (
        "POST",
        "/api/v1/accounts/:account_id/reports/:report",
        Endpoint::StartReport,
    ),
    (
        "GET",
        "/api/v1/accounts/:account_id/reports",
        Endpoint::ListAvailableReports,
    ),
    (
        "GET",
        "/api/v1/accounts/:account_id/reports/:report",
        Endpoint::ListReports,
    ),
    (
        "GET",
        "/api/v1/accounts/:account_id/reports/:report/:id",
        Endpoint::ShowReport,
    ),
    (
        "GET",
        "/accounts/:account_id/files/:id/download",
        Endpoint::AccountFileDownload,
    ),
    ("GET", "/files/:id/download", Endpoint::FileDownload),
];

/// A matched request: the template, the endpoint and the decoded `:param` segments in order.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub template: &'static str,
    pub endpoint: Endpoint,
    pub params: Vec<String>,
    /// The request path as sent, minus a trailing `.json` (the base of page links).
    pub path: String,
}

/// Matches a method and raw (still percent-encoded) path against the route table.
pub fn match_route(method: &str, raw_path: &str) -> Option<RouteMatch> {
    // §0: `.json` is optional; only the last segment can carry it.
    let path = raw_path.strip_suffix(".json").unwrap_or(raw_path);
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let segments: Vec<&str> = path.split('/').collect();
    let table = ROUTES.iter().copied();
    for (route_method, template, endpoint) in table {
        if route_method != method {
            continue;
        }
        let pattern: Vec<&str> = template.split('/').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut matched = true;
        for (p, s) in pattern.iter().zip(&segments) {
            if p.starts_with(':') {
                match decode_segment(s) {
                    Some(decoded) if !s.is_empty() => params.push(decoded),
                    _ => {
                        matched = false;
                        break;
                    }
                }
            } else if p != s {
                matched = false;
                break;
            }
        }
        if matched {
            return Some(RouteMatch {
                template,
                endpoint,
                params,
                path: path.to_string(),
            });
        }
    }
    None
}

/// Everything a handler needs besides the store.
pub struct Call<'a> {
    pub route: &'a RouteMatch,
    pub params: &'a Params,
    /// `http://<Host the client used>`.
    pub origin: &'a str,
    /// The raw body, for endpoints that take files (SIS imports).
    pub body: &'a Bytes,
    pub content_type: Option<&'a str>,
    /// Whether the request carried the valid token (public endpoints run without one).
    pub authenticated: bool,
}

impl Call<'_> {
    fn id(&self, index: usize) -> Result<IdRef, ApiError> {
        self.route
            .params
            .get(index)
            .and_then(|raw| IdRef::parse(raw))
            .ok_or(ApiError::NotFound)
    }

    fn raw(&self, index: usize) -> &str {
        self.route
            .params
            .get(index)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn link_base(&self) -> LinkBase {
        LinkBase::new(format!("{}{}", self.origin, self.route.path), self.params)
    }
}

/// Runs one endpoint against the store.
pub fn handle(store: &mut Store, call: &Call<'_>) -> Result<Reply, ApiError> {
    match call.route.endpoint {
        Endpoint::ListCourseEnrollments => {
            let course_id = store.resolve_course(&call.id(0)?)?.id;
            list_enrollments(store, call, ListScope::Course(course_id))
        }
        Endpoint::ListSectionEnrollments => {
            let section = store.resolve_section(&call.id(0)?)?;
            let scope = ListScope::Section {
                course_id: section.course_id,
                section_id: section.id,
            };
            list_enrollments(store, call, scope)
        }
        Endpoint::ListUserEnrollments => {
            let user_id = store.resolve_user(&call.id(0)?)?.id;
            list_enrollments(store, call, ListScope::User(user_id))
        }
        Endpoint::CreateCourseEnrollment => {
            let course_id = store.resolve_course(&call.id(0)?)?.id;
            let id = store.create_enrollment(course_id, None, call.params)?;
            enrollment_reply(store, call, id)
        }
        Endpoint::CreateSectionEnrollment => {
            let section = store.resolve_section(&call.id(0)?)?;
            let (course_id, section_id) = (section.course_id, section.id);
            let id = store.create_enrollment(course_id, Some(section_id), call.params)?;
            enrollment_reply(store, call, id)
        }
        Endpoint::ShowAccountEnrollment => {
            let account = store.resolve_account(&call.id(0)?)?;
            let root = account.root_account_id.unwrap_or(account.id);
            let id = call.id(1)?.canvas_id().ok_or(ApiError::NotFound)?;
            let enrollment = store
                .enrollment(id)
                .filter(|e| e.root_account_id == root)
                .ok_or(ApiError::NotFound)?;
            Ok(Reply::json(
                StatusCode::OK,
                &render::enrollment_json(store, enrollment, call.origin, false),
            ))
        }
        Endpoint::EndEnrollment => {
            let course_id = store.resolve_course(&call.id(0)?)?.id;
            let task = EndTask::from_param(call.params.get("task"));
            let id = store.end_enrollment(course_id, call.raw(1), task)?;
            enrollment_reply(store, call, id)
        }
        Endpoint::ReactivateEnrollment => {
            let course_id = store.resolve_course(&call.id(0)?)?.id;
            let id = store.reactivate_enrollment(course_id, call.raw(1))?;
            enrollment_reply(store, call, id)
        }
        Endpoint::ListRoles => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let mut states = call.params.list("state");
            if states.is_empty() {
                states.push("active".to_string());
            }
            let show_inherited = call.params.get("show_inherited").is_some_and(truthy);
            let roles: Vec<Value> = store
                .list_roles(account_id, &states, show_inherited)
                .into_iter()
                .map(|r| render::role_json(store, r))
                .collect();
            let page = numbered_page(&roles, call.params, &call.link_base());
            Ok(Reply::paged(page.items, &page.link))
        }
        Endpoint::ShowRole => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let role = store.show_role(account_id, call.raw(1))?;
            Ok(Reply::json(StatusCode::OK, &render::role_json(store, role)))
        }
        Endpoint::ShowAccount => {
            let account = store.resolve_account(&call.id(0)?)?;
            Ok(Reply::json(StatusCode::OK, &render::account_json(account)))
        }
        Endpoint::ShowSelf => {
            let user = store.resolve_user(&IdRef::Special("self".into()))?;
            Ok(Reply::json(StatusCode::OK, &render::user_json(user)))
        }
        Endpoint::ShowUser => {
            let user = store.resolve_user(&call.id(0)?)?;
            Ok(Reply::json(StatusCode::OK, &render::user_json(user)))
        }
        Endpoint::ShowCourse => {
            let course = store.resolve_course(&call.id(0)?)?;
            Ok(Reply::json(StatusCode::OK, &render::course_json(course)))
        }
        Endpoint::ListSections => {
            let course_id = store.resolve_course(&call.id(0)?)?.id;
            let sections: Vec<Value> = store
                .sections()
                .filter(|s| s.course_id == course_id && s.is_active())
                .map(|s| render::section_json(store, s))
                .collect();
            let page = numbered_page(&sections, call.params, &call.link_base());
            Ok(Reply::paged(page.items, &page.link))
        }
        Endpoint::ShowSection => {
            let section = store.resolve_section(&call.id(0)?)?;
            Ok(Reply::json(
                StatusCode::OK,
                &render::section_json(store, section),
            ))
        }
        Endpoint::ShowCourseSection => {
            let course_id = store.resolve_course(&call.id(0)?)?.id;
            let section = store
                .resolve_section(&call.id(1)?)
                .ok()
                .filter(|s| s.course_id == course_id)
                .ok_or(ApiError::NotFound)?;
            Ok(Reply::json(
                StatusCode::OK,
                &render::section_json(store, section),
            ))
        }
        Endpoint::StartSisImport => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let id =
                store.start_sis_import(account_id, call.params, call.content_type, call.body)?;
            store.sis_import_reply(call.origin, id)
        }
        Endpoint::ListSisImports => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            // `created_since` (ISO 8601) keeps the imports created after it.
            let since = call
                .params
                .get("created_since")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            let imports: Vec<Value> = store
                .sis_imports_of(account_id)
                .into_iter()
                .filter(|i| since.is_none_or(|s| i.created_at >= s))
                .map(|i| store.sis_import_json(call.origin, i))
                .collect();
            let page = numbered_page(&imports, call.params, &call.link_base());
            let mut reply = Reply::json(
                StatusCode::OK,
                &serde_json::json!({"sis_imports": page.items}),
            );
            if let Ok(value) = HeaderValue::from_str(&page.link) {
                reply.headers.insert(header::LINK, value);
            }
            Ok(reply)
        }
        Endpoint::ShowSisImport => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let id = store.poll_sis_import(account_id, call.raw(1))?;
            store.sis_import_reply(call.origin, id)
        }
        Endpoint::StartReport => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let id = store.start_report(account_id, call.raw(1), call.params)?;
            store.report_reply(call.origin, id)
        }
        Endpoint::ListAvailableReports => {
            store.resolve_account(&call.id(0)?)?;
            Ok(Reply::json(StatusCode::OK, &store.available_reports_json()))
        }
        Endpoint::ListReports => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let reports = store.reports_of(call.origin, account_id, call.raw(1))?;
            let page = numbered_page(&reports, call.params, &call.link_base());
            Ok(Reply::paged(page.items, &page.link))
        }
        Endpoint::ShowReport => {
            let account_id = store.resolve_account(&call.id(0)?)?.id;
            let id = store.poll_report(account_id, call.raw(1), call.raw(2))?;
            store.report_reply(call.origin, id)
        }
        Endpoint::AccountFileDownload => {
            store.resolve_account(&call.id(0)?)?;
            super::files::redirect_to_download(store, call.origin, call.raw(1))
        }
        Endpoint::FileDownload => super::files::download(
            store,
            call.raw(0),
            call.params.get("verifier"),
            call.authenticated,
        ),
    }
}

fn list_enrollments(store: &Store, call: &Call<'_>, scope: ListScope) -> Result<Reply, ApiError> {
    let rows: Vec<&super::model::Enrollment> = store.list_enrollments(scope, call.params)?;
    let page = bookmark_page(
        &rows,
        |e| store.enrollment_sort_key(e),
        call.params,
        &call.link_base(),
    )?;
    let items = page
        .items
        .iter()
        .map(|e| render::enrollment_json(store, e, call.origin, true))
        .collect();
    Ok(Reply::paged(items, &page.link))
}

/// POST, DELETE and reactivate answer 200 with the Enrollment JSON and no `user` (§1).
fn enrollment_reply(store: &Store, call: &Call<'_>, id: u64) -> Result<Reply, ApiError> {
    let enrollment = store.enrollment(id).ok_or(ApiError::NotFound)?;
    Ok(Reply::json(
        StatusCode::OK,
        &render::enrollment_json(store, enrollment, call.origin, false),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_suffix_and_encoded_slashes() {
        let m = match_route(
            "GET",
            "/api/v1/courses/sis_course_id:CS%2F101/enrollments.json",
        )
        .expect("matches");
        assert_eq!(m.template, "/api/v1/courses/:id/enrollments");
        assert_eq!(m.params, vec!["sis_course_id:CS/101".to_string()]);
        let m = match_route("GET", "/api/v1/users/self").expect("matches");
        assert_eq!(m.endpoint, Endpoint::ShowSelf);
        assert!(match_route("PATCH", "/api/v1/courses/1/enrollments/2").is_none());
    }
}
