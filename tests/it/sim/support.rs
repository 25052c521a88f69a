//! A standard seed and small HTTP helpers shared by the simulator tests.

use canvas_sim::{
    DEFAULT_TOKEN, Seed, SeedAccount, SeedCourse, SeedEnrollment, SeedRole, SeedSection, SeedUser,
    SimHandle, SimOptions, spawn,
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

// Users.
pub const ADA: u64 = 10; // sis S10, login ada@example.edu
pub const BOB: u64 = 11; // sis S11, login BOB@EXAMPLE.EDU
pub const LOWER_ABC: u64 = 12; // sis "abc"
pub const UPPER_ABC: u64 = 13; // sis "ABC"
pub const OLIVE: u64 = 14; // observer of SAM
pub const TESS: u64 = 15; // teacher
pub const SAM: u64 = 16; // student with a linked observer, not enrolled
pub const NEW_USER: u64 = 17; // sis S17, integration id INT-17, login nia
pub const NO_LOGIN: u64 = 19; // sis S19, no login, student in CS

// Accounts: 1 root, 2 "Science" and 3 "Arts" are its children.
pub const SCIENCE: u64 = 2;

// Courses.
pub const MATH: u64 = 20; // sis MATH-101, account Science, published
pub const CS: u64 = 21; // sis "CS/101.11é", root account
pub const DRAFT: u64 = 22; // unpublished, no sections at all
pub const OLD: u64 = 23; // completed
pub const GONE: u64 = 24; // deleted

// Sections.
pub const MATH_DEFAULT: u64 = 30;
pub const MATH_B: u64 = 31; // sis MATH-101-B
pub const CS_1: u64 = 32; // sis CS-1
pub const MATH_DELETED: u64 = 33;
pub const OLD_1: u64 = 34;

// Roles (built-ins are 3..=7).
pub const STUDENT_ROLE: u64 = 3;
pub const TEACHER_ROLE: u64 = 4;
pub const TA_ROLE: u64 = 5;
pub const OBSERVER_ROLE: u64 = 7;
pub const LAB_ASSISTANT: u64 = 40; // TaEnrollment, root account
pub const AUDITOR: u64 = 41; // StudentEnrollment, Science
pub const RETIRED: u64 = 42; // StudentEnrollment, root, inactive
pub const ARTS_HELPER: u64 = 43; // TaEnrollment, Arts (sibling of Science)

// Enrollments in MATH.
pub const ADA_MATH: u64 = 100; // student, default section, active
pub const BOB_MATH_B: u64 = 101; // student, section B, invited
pub const TESS_MATH: u64 = 102; // teacher, active
pub const LOWER_MATH_COMPLETED: u64 = 103; // completed
pub const UPPER_MATH_INACTIVE: u64 = 104; // inactive
pub const BOB_MATH_TA_DELETED: u64 = 105; // TA in default section, deleted
pub const OLIVE_MATH_REJECTED: u64 = 106; // student, rejected
pub const NEW_MATH_PENDING: u64 = 107; // student, creation_pending
pub const ADA_MATH_LAB: u64 = 108; // Lab Assistant (custom TA role), active
pub const ADA_CS: u64 = 109; // student in CS-1, active
pub const NO_LOGIN_CS: u64 = 110; // student in CS-1, active

pub fn standard_seed() -> Seed {
    Seed::default()
        .account(SeedAccount::new(1, "District"))
        .account(
            SeedAccount::new(SCIENCE, "Science")
                .with_parent(1)
                .with_sis_account_id("SCI"),
        )
        .account(SeedAccount::new(3, "Arts").with_parent(1))
        .user(
            SeedUser::new(ADA, "Ada Lovelace")
                .with_sis_user_id("S10")
                .with_login_id("ada@example.edu"),
        )
        .user(
            SeedUser::new(BOB, "Bob Baker")
                .with_sis_user_id("S11")
                .with_login_id("BOB@EXAMPLE.EDU"),
        )
        .user(
            SeedUser::new(LOWER_ABC, "Lower Case")
                .with_sis_user_id("abc")
                .with_login_id("lower"),
        )
        .user(
            SeedUser::new(UPPER_ABC, "Upper Case")
                .with_sis_user_id("ABC")
                .with_login_id("upper"),
        )
        .user(
            SeedUser::new(OLIVE, "Olive Observer")
                .with_sis_user_id("O14")
                .with_login_id("olive"),
        )
        .user(
            SeedUser::new(TESS, "Tess Teacher")
                .with_sis_user_id("T15")
                .with_login_id("tess"),
        )
        .user(
            SeedUser::new(SAM, "Sam Student")
                .with_sis_user_id("S16")
                .with_login_id("sam"),
        )
        .user(
            SeedUser::new(NEW_USER, "Nia New")
                .with_sis_user_id("S17")
                .with_integration_id("INT-17")
                .with_login_id("nia"),
        )
        .user(SeedUser::new(NO_LOGIN, "Nolan Login").with_sis_user_id("S19"))
        .course(
            SeedCourse::new(MATH, "Math 101")
                .with_sis_course_id("MATH-101")
                .in_account(SCIENCE),
        )
        .course(SeedCourse::new(CS, "Computing").with_sis_course_id("CS/101.11é"))
        .course(
            SeedCourse::new(DRAFT, "Draft")
                .with_sis_course_id("DRAFT")
                .with_state("unpublished"),
        )
        .course(
            SeedCourse::new(OLD, "Old")
                .with_sis_course_id("OLD")
                .with_state("completed"),
        )
        .course(
            SeedCourse::new(GONE, "Gone")
                .with_sis_course_id("GONE")
                .with_state("deleted"),
        )
        .section(SeedSection::new(MATH_DEFAULT, MATH, "Math 101").default_section())
        .section(SeedSection::new(MATH_B, MATH, "Math 101 B").with_sis_section_id("MATH-101-B"))
        .section(SeedSection::new(CS_1, CS, "CS 1").with_sis_section_id("CS-1"))
        .section(SeedSection {
            workflow_state: Some("deleted".into()),
            ..SeedSection::new(MATH_DELETED, MATH, "Old section").with_sis_section_id("MATH-OLD")
        })
        .section(SeedSection::new(OLD_1, OLD, "Old 1").default_section())
        .role(SeedRole::custom(
            LAB_ASSISTANT,
            "Lab Assistant",
            "TaEnrollment",
        ))
        .role(SeedRole::custom(AUDITOR, "Auditor", "StudentEnrollment").in_account(SCIENCE))
        .role(SeedRole::custom(RETIRED, "Retired", "StudentEnrollment").inactive())
        .role(SeedRole::custom(ARTS_HELPER, "Arts Helper", "TaEnrollment").in_account(3))
        .enrollment(
            SeedEnrollment::new(ADA, MATH)
                .with_id(ADA_MATH)
                .in_section(MATH_DEFAULT),
        )
        .enrollment(
            SeedEnrollment::new(BOB, MATH)
                .with_id(BOB_MATH_B)
                .in_section(MATH_B)
                .with_state("invited"),
        )
        .enrollment(
            SeedEnrollment::new(TESS, MATH)
                .with_id(TESS_MATH)
                .with_type("TeacherEnrollment"),
        )
        .enrollment(
            SeedEnrollment::new(LOWER_ABC, MATH)
                .with_id(LOWER_MATH_COMPLETED)
                .with_state("completed"),
        )
        .enrollment(
            SeedEnrollment::new(UPPER_ABC, MATH)
                .with_id(UPPER_MATH_INACTIVE)
                .with_state("inactive"),
        )
        .enrollment(
            SeedEnrollment::new(BOB, MATH)
                .with_id(BOB_MATH_TA_DELETED)
                .with_type("TaEnrollment")
                .with_state("deleted"),
        )
        .enrollment(
            SeedEnrollment::new(OLIVE, MATH)
                .with_id(OLIVE_MATH_REJECTED)
                .with_state("rejected"),
        )
        .enrollment(
            SeedEnrollment::new(NEW_USER, MATH)
                .with_id(NEW_MATH_PENDING)
                .with_state("creation_pending"),
        )
        .enrollment(
            SeedEnrollment::new(ADA, MATH)
                .with_id(ADA_MATH_LAB)
                .with_role_id(LAB_ASSISTANT),
        )
        .enrollment(
            SeedEnrollment::new(ADA, CS)
                .with_id(ADA_CS)
                .in_section(CS_1),
        )
        .enrollment(
            SeedEnrollment::new(NO_LOGIN, CS)
                .with_id(NO_LOGIN_CS)
                .in_section(CS_1),
        )
        .observer_link(OLIVE, SAM)
}

/// A simulator on the standard seed.
pub async fn start() -> SimHandle {
    start_with(SimOptions {
        seed: standard_seed(),
        ..SimOptions::default()
    })
    .await
}

pub async fn start_with(options: SimOptions) -> SimHandle {
    spawn(options).await.expect("simulator starts")
}

pub fn api(sim: &SimHandle, path: &str) -> String {
    format!("{}/api/v1{}", sim.base_url(), path)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A request with the default token.
pub fn request(sim: &SimHandle, method: Method, path: &str) -> RequestBuilder {
    client()
        .request(method, api(sim, path))
        .bearer_auth(DEFAULT_TOKEN)
}

pub async fn get(sim: &SimHandle, path: &str) -> Response {
    request(sim, Method::GET, path)
        .send()
        .await
        .expect("GET reaches the simulator")
}

pub async fn post_form(sim: &SimHandle, path: &str, form: &[(&str, &str)]) -> Response {
    request(sim, Method::POST, path)
        .form(form)
        .send()
        .await
        .expect("POST reaches the simulator")
}

pub async fn delete(sim: &SimHandle, path: &str) -> Response {
    request(sim, Method::DELETE, path)
        .send()
        .await
        .expect("DELETE reaches the simulator")
}

/// Status and JSON body.
pub async fn json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body is readable");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
    (status, value)
}

pub async fn get_json(sim: &SimHandle, path: &str) -> (u16, Value) {
    json(get(sim, path).await).await
}

/// The `id`s of a JSON array.
pub fn ids(body: &Value) -> Vec<u64> {
    body.as_array()
        .unwrap_or_else(|| panic!("expected an array: {body}"))
        .iter()
        .map(|item| {
            item["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("integer id in {item}"))
        })
        .collect()
}

/// Sorted ids, for membership checks.
pub fn id_set(body: &Value) -> Vec<u64> {
    let mut ids = ids(body);
    ids.sort_unstable();
    ids
}

/// The `rel` → URL pairs of a `Link` header.
pub fn links(response: &Response) -> Vec<(String, String)> {
    let header = response
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    parse_links(header)
}

pub fn parse_links(header: &str) -> Vec<(String, String)> {
    header
        .split(',')
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let (url, rel) = entry.split_once("; rel=")?;
            Some((
                rel.trim_matches('"').to_string(),
                url.trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            ))
        })
        .collect()
}

pub const NOT_FOUND_BODY: &str =
    r#"{"errors":[{"message":"The specified resource does not exist."}]}"#;
