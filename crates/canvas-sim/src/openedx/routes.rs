//! The route table and the program-enrollment views (facts §2–§4): authentication and permission, then the program
//! and course checks, then a cursor-paginated read or a validated, size-checked, per-key write. Handlers are
//! synchronous over the locked store; the pipeline around them (record, faults, latency) is `server.rs`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::body::{self, BodyError};
use super::oauth;
use super::store::{COURSE_STATUSES, OpenEdxStore, PROGRAM_STATUSES, Tables};
use super::write::{KeyResults, WriteMethod};
use super::{COURSE_ENROLLMENTS_ROUTE, PROGRAM_ENROLLMENTS_ROUTE, TOKEN_ROUTE};
use crate::reply::Reply;

/// `MAX_ENROLLMENT_RECORDS` (facts §2.3).
pub const MAX_ENROLLMENT_RECORDS: usize = 25;
/// `ProgramEnrollmentPagination.page_size` (facts §4.3).
pub const DEFAULT_PAGE_SIZE: usize = 100;

const API_PREFIX: &str = "/api/program_enrollments/v1/programs/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    ProgramEnrollments,
    CourseEnrollments,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteMatch {
    pub endpoint: Endpoint,
    pub template: &'static str,
    pub program_uuid: String,
    /// Percent-decoded.
    pub course_id: String,
}

/// `PROGRAM_UUID_PATTERN = [A-Fa-f0-9-]+` (facts §2.1).
fn is_program_uuid_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

pub(crate) fn match_route(path: &str) -> Option<RouteMatch> {
    let route = |endpoint, template, program_uuid: &str, course_id: String| RouteMatch {
        endpoint,
        template,
        program_uuid: program_uuid.to_string(),
        course_id,
    };
    if path == "/oauth2/access_token" || path == "/oauth2/access_token/" {
        return Some(route(Endpoint::Token, TOKEN_ROUTE, "", String::new()));
    }
    let rest = path.strip_prefix(API_PREFIX)?;
    let (program_uuid, rest) = rest.split_once('/')?;
    if !is_program_uuid_segment(program_uuid) {
        return None;
    }
    // The program route's regex ends `/$`; the course route's has no `$` (facts §2.1, §3.1).
    if rest == "enrollments/" {
        return Some(route(
            Endpoint::ProgramEnrollments,
            PROGRAM_ENROLLMENTS_ROUTE,
            program_uuid,
            String::new(),
        ));
    }
    let course_and_rest = rest.strip_prefix("courses/")?;
    let end = course_and_rest.find("/enrollments/")?;
    let raw_course = &course_and_rest[..end];
    if raw_course.is_empty() {
        return None;
    }
    let course_id = percent_encoding::percent_decode_str(raw_course)
        .decode_utf8_lossy()
        .into_owned();
    Some(route(
        Endpoint::CourseEnrollments,
        COURSE_ENROLLMENTS_ROUTE,
        program_uuid,
        course_id,
    ))
}

/// One request as the views see it.
pub(crate) struct Call<'a> {
    pub route: &'a RouteMatch,
    pub method: &'a str,
    pub query: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    /// `http://host:port` as the client addressed us.
    pub origin: &'a str,
}

/// A JSON object with its keys in the given order (DRF renders dicts in insertion order).
pub(crate) fn ordered_json(pairs: &[(&str, Value)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::String((*k).to_string()), v))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// A reply whose body is already JSON text; DRF answers `application/json`.
pub(crate) fn json_text(status: StatusCode, text: String) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Reply {
        status,
        headers,
        body: Bytes::from(text),
    }
}

/// DeveloperErrorViewMixin's `{"developer_message": <detail>}` (facts §1.7); no WWW-Authenticate.
pub(crate) fn developer_error(status: StatusCode, detail: Value) -> Reply {
    json_text(status, ordered_json(&[("developer_message", detail)]))
}

fn not_found_with_code(message: &str, code: &str) -> Reply {
    json_text(
        StatusCode::NOT_FOUND,
        ordered_json(&[
            ("developer_message", json!(message)),
            ("error_code", json!(code)),
        ]),
    )
}

pub(crate) fn html_reply(status: StatusCode, html: &str) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Reply {
        status,
        headers,
        body: Bytes::from(html.to_string()),
    }
}

/// Django's 404 page for a path no URL pattern matches.
pub(crate) fn unmatched() -> Reply {
    html_reply(
        StatusCode::NOT_FOUND,
        "<!doctype html><html lang=\"en\"><head><title>Not Found</title></head><body><h1>Not Found</h1><p>The requested resource was not found on this server.</p></body></html>",
    )
}

/// The program-enrollment views (the token endpoint is answered by `server.rs`, which knows the client address).
pub(crate) fn handle(store: &mut OpenEdxStore, call: &Call<'_>) -> Reply {
    match view(store, call) {
        Ok(reply) => reply,
        Err(reply) => *reply,
    }
}

fn view(store: &mut OpenEdxStore, call: &Call<'_>) -> Result<Reply, Box<Reply>> {
    let principal = oauth::authenticate(store, call.headers)?;
    oauth::authorize(&principal)?;
    let write = WriteMethod::parse(call.method);
    if call.method != "GET" && write.is_none() {
        return Err(Box::new(developer_error(
            StatusCode::METHOD_NOT_ALLOWED,
            json!(format!("Method \"{}\" not allowed.", call.method)),
        )));
    }
    let program_uuid = call.route.program_uuid.as_str();
    // The catalog cache is keyed by the raw URL string: an uppercase UUID is a 404 (facts §2.2).
    if !store.programs.contains_key(program_uuid) {
        return Err(Box::new(not_found_with_code(
            "no program exists with given key",
            "program_does_not_exist",
        )));
    }
    let course = (call.route.endpoint == Endpoint::CourseEnrollments)
        .then_some(call.route.course_id.as_str());
    if let Some(course_id) = course {
        check_course(store, program_uuid, course_id)?;
    }
    match write {
        None => list(store, call, program_uuid, course),
        Some(method) => write_enrollments(store, call, method, program_uuid, course),
    }
}

/// `verify_course_exists_and_in_program` (facts §3.1), in its order.
fn check_course(
    store: &OpenEdxStore,
    program_uuid: &str,
    course_id: &str,
) -> Result<(), Box<Reply>> {
    if !is_course_key(course_id) {
        return Err(Box::new(not_found_with_code(
            "The provided course key cannot be parsed.",
            "invalid_course_key",
        )));
    }
    if !store.course_exists(course_id) {
        return Err(Box::new(not_found_with_code(
            &format!("Unknown course {course_id}"),
            "course_does_not_exist",
        )));
    }
    let in_program = store
        .programs
        .get(program_uuid)
        .is_some_and(|p| p.course_runs().iter().any(|r| r == course_id));
    if !in_program {
        return Err(Box::new(not_found_with_code(
            "the program's curriculum does not contain the given course",
            "course_not_in_program",
        )));
    }
    Ok(())
}

/// opaque-keys' CourseLocator: `course-v1:ORG+COURSE+RUN` or the deprecated `ORG/COURSE/RUN`, each part of
/// `[\w\-~.:]` characters.
pub(crate) fn is_course_key(text: &str) -> bool {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '~' | '.' | ':'))
    };
    let parts: Vec<&str> = match text.strip_prefix("course-v1:") {
        Some(rest) => rest.split('+').collect(),
        None => text.split('/').collect(),
    };
    parts.len() == 3 && parts.into_iter().all(part_ok)
}

fn write_enrollments(
    store: &mut OpenEdxStore,
    call: &Call<'_>,
    method: WriteMethod,
    program_uuid: &str,
    course: Option<&str>,
) -> Result<Reply, Box<Reply>> {
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let refused = |error: BodyError| match error {
        BodyError::Invalid(detail) => developer_error(StatusCode::BAD_REQUEST, detail),
        BodyError::UnsupportedMediaType(mime) => developer_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!(format!("Unsupported media type \"{mime}\" in request.")),
        ),
    };
    let data = body::parse(content_type, call.body).map_err(refused)?;
    // Validation (400) comes before the size check (413): facts §2.3.
    let (results, ok): (KeyResults, &[&str]) = match course {
        None => {
            let requests = body::program_requests(&data, method).map_err(refused)?;
            check_size(&data)?;
            let results = store.write_program_enrollments(program_uuid, method, requests);
            (results, &PROGRAM_STATUSES)
        }
        Some(course_id) => {
            let requests = body::course_requests(&data).map_err(refused)?;
            check_size(&data)?;
            let results =
                store.write_program_course_enrollments(program_uuid, course_id, method, requests);
            (results, &COURSE_STATUSES)
        }
    };
    let status = StatusCode::from_u16(results.http_status(ok)).unwrap_or(StatusCode::OK);
    let pairs: Vec<(&str, Value)> = results
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), json!(v)))
        .collect();
    Ok(json_text(status, ordered_json(&pairs)))
}

/// 413 with the view's message, its numbers swapped (facts §7.1).
fn check_size(data: &Value) -> Result<(), Box<Reply>> {
    let count = body::len(data);
    if count > MAX_ENROLLMENT_RECORDS {
        let message =
            format!("{MAX_ENROLLMENT_RECORDS} enrollments requested, but limit is {count}.");
        return Err(Box::new(json_text(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::String(message).to_string(),
        )));
    }
    Ok(())
}

/// A decoded DRF cursor (facts §4.3): `o`, `r`, `p` (the last id seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Cursor {
    pub reverse: bool,
    pub position: Option<u64>,
}

impl Cursor {
    pub fn decode(encoded: &str) -> Option<Cursor> {
        let bytes = STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut cursor = Cursor::default();
        for (key, value) in url::form_urlencoded::parse(text.as_bytes()) {
            match key.as_ref() {
                "o" => {
                    value.parse::<u64>().ok()?;
                }
                "r" => cursor.reverse = value.parse::<i64>().ok()? != 0,
                "p" => cursor.position = Some(value.parse::<u64>().ok()?),
                _ => {}
            }
        }
        Some(cursor)
    }

    pub fn encode(&self) -> String {
        let mut tokens = url::form_urlencoded::Serializer::new(String::new());
        if self.reverse {
            tokens.append_pair("r", "1");
        }
        if let Some(position) = self.position {
            tokens.append_pair("p", &position.to_string());
        }
        STANDARD.encode(tokens.finish())
    }
}

/// `page_size`: any positive integer, else 100 (facts §4.3: no max_page_size).
fn page_size(query: &[(String, String)]) -> usize {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == "page_size")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PAGE_SIZE)
}

/// The request URL with `cursor` replaced, query sorted by name (DRF's `replace_query_param`).
fn page_link(call: &Call<'_>, query: &[(String, String)], cursor: Cursor) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "cursor")
        .cloned()
        .collect();
    pairs.push(("cursor".to_string(), cursor.encode()));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}{}?{}", call.origin, call.path, encoded)
}

/// One page of ids matching `keep`, by ascending id, from a cursor; plus the next and previous cursors.
fn paginate(
    ids: &mut dyn DoubleEndedIterator<Item = u64>,
    cursor: Cursor,
    size: usize,
) -> (Vec<u64>, Option<Cursor>, Option<Cursor>) {
    if cursor.reverse {
        let position = cursor.position.unwrap_or(u64::MAX);
        let mut page: Vec<u64> = ids
            .rev()
            .filter(|id| *id < position)
            .take(size + 1)
            .collect();
        let has_previous = page.len() > size;
        page.truncate(size);
        page.reverse();
        let next = Some(Cursor {
            reverse: false,
            position: page.last().copied().or(cursor.position),
        });
        let previous = has_previous.then(|| Cursor {
            reverse: true,
            position: page.first().copied(),
        });
        return (page, next, previous);
    }
    let mut page: Vec<u64> = match cursor.position {
        Some(position) => ids.filter(|id| *id > position).take(size + 1).collect(),
        None => ids.take(size + 1).collect(),
    };
    let has_next = page.len() > size;
    page.truncate(size);
    let next = has_next.then(|| Cursor {
        reverse: false,
        position: page.last().copied(),
    });
    let previous = cursor.position.map(|position| Cursor {
        reverse: true,
        position: page.first().copied().or(Some(position)),
    });
    (page, next, previous)
}

/// GET of either list (facts §4.1, §4.2), read from the (possibly lagging) replica.
fn list(
    store: &mut OpenEdxStore,
    call: &Call<'_>,
    program_uuid: &str,
    course: Option<&str>,
) -> Result<Reply, Box<Reply>> {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(call.query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let cursor = match query.iter().rev().find(|(k, _)| k == "cursor") {
        None => Cursor::default(),
        Some((_, encoded)) => Cursor::decode(encoded)
            .ok_or_else(|| developer_error(StatusCode::NOT_FOUND, json!("Invalid cursor")))?,
    };
    let size = page_size(&query);
    let snapshot = store.replica_snapshot();
    let store: &OpenEdxStore = store;
    let tables: &Tables = snapshot.as_deref().unwrap_or(&store.tables);
    let results: Vec<String>;
    let (next, previous) = match course {
        None => {
            let mut ids = tables
                .program_enrollments
                .values()
                .filter(|pe| pe.program_uuid == program_uuid)
                .map(|pe| pe.id);
            let (page, next, previous) = paginate(&mut ids, cursor, size);
            results = page
                .iter()
                .filter_map(|id| tables.program_enrollments.get(id))
                .map(|pe| {
                    let user = pe.username.as_ref().and_then(|u| store.user(u));
                    ordered_json(&[
                        ("student_key", json!(pe.external_user_key)),
                        ("status", json!(pe.status)),
                        ("account_exists", json!(pe.username.is_some())),
                        ("curriculum_uuid", json!(pe.curriculum_uuid)),
                        ("username", json!(pe.username.clone().unwrap_or_default())),
                        (
                            "email",
                            json!(user.map(|u| u.email.clone()).unwrap_or_default()),
                        ),
                    ])
                })
                .collect();
            (next, previous)
        }
        Some(course_id) => {
            let mut ids = tables
                .course_enrollments
                .values()
                .filter(|pce| {
                    pce.course_key == course_id
                        && tables
                            .program_enrollments
                            .get(&pce.program_enrollment_id)
                            .is_some_and(|pe| pe.program_uuid == program_uuid)
                })
                .map(|pce| pce.id);
            let (page, next, previous) = paginate(&mut ids, cursor, size);
            results = page
                .iter()
                .filter_map(|id| tables.course_enrollments.get(id))
                .filter_map(|pce| {
                    let pe = tables.program_enrollments.get(&pce.program_enrollment_id)?;
                    Some(ordered_json(&[
                        ("student_key", json!(pe.external_user_key)),
                        ("status", json!(pce.status)),
                        ("account_exists", json!(pe.username.is_some())),
                        ("curriculum_uuid", json!(pe.curriculum_uuid)),
                        ("course_staff", json!(store.course_staff_in(tables, pce))),
                    ]))
                })
                .collect();
            (next, previous)
        }
    };
    let link = |c: Option<Cursor>| c.map_or(Value::Null, |c| json!(page_link(call, &query, c)));
    let body = format!(
        "{{\"next\":{},\"previous\":{},\"results\":[{}]}}",
        link(next),
        link(previous),
        results.join(",")
    );
    Ok(json_text(StatusCode::OK, body))
}
