//! Request bodies of the program-enrollment writes, validated the way DRF's `many=True` serializers do (facts §2.4,
//! §3.2, §7.1): a JSON array of objects; a 400's `developer_message` is the ListSerializer's error list, one entry per
//! item (`{}` for a valid one). Field messages are DRF's own strings.

use serde_json::{Map, Value, json};

use super::store::normalize_uuid;
use super::write::{CourseRequest, ProgramRequest, WriteMethod};

/// Why a body was refused before any write.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// 400 `{"developer_message": <this>}`.
    Invalid(Value),
    /// 415: a content type DRF has no parser for.
    UnsupportedMediaType(String),
}

const REQUIRED: &str = "This field is required.";
const NULL: &str = "This field may not be null.";
const BLANK: &str = "This field may not be blank.";
const NOT_A_STRING: &str = "Not a valid string.";
const NOT_A_UUID: &str = "Must be a valid UUID.";
const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";

/// Python's `type(x).__name__` for a JSON value.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `request.data`: JSON is parsed; a form body is a QueryDict (which the list serializer reads as an empty list);
/// an empty body is `{}`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Value, BodyError> {
    let mime = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if body.is_empty() {
        return Ok(json!({}));
    }
    match mime.as_str() {
        "application/json" => serde_json::from_slice(body)
            .map_err(|e| BodyError::Invalid(Value::String(format!("JSON parse error - {e}")))),
        "application/x-www-form-urlencoded" | "multipart/form-data" => Ok(json!([])),
        other => Err(BodyError::UnsupportedMediaType(other.to_string())),
    }
}

/// The items of a list body, or the ListSerializer's "not a list" error.
fn items(data: &Value) -> Result<&[Value], BodyError> {
    match data {
        Value::Array(items) => Ok(items),
        other => Err(BodyError::Invalid(json!({"non_field_errors": [format!(
            "Expected a list of items but got type \"{}\".",
            python_type(other)
        )]}))),
    }
}

/// CharField(allow_blank=False), trimmed; numbers become their text.
fn char_field(item: &Map<String, Value>, name: &str) -> Result<String, &'static str> {
    match item.get(name) {
        None => Err(REQUIRED),
        Some(Value::Null) => Err(NULL),
        Some(Value::String(s)) if s.trim().is_empty() => Err(BLANK),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(NOT_A_STRING),
    }
}

/// UUIDField: `uuid.UUID(hex=...)` (urn/braces/hyphens anywhere) or an integer.
fn uuid_field(item: &Map<String, Value>, name: &str) -> Result<String, &'static str> {
    match item.get(name) {
        None => Err(REQUIRED),
        Some(Value::Null) => Err(NULL),
        Some(Value::String(s)) => {
            let hex: String = s
                .replace("urn:", "")
                .replace("uuid:", "")
                .trim_matches(|c| c == '{' || c == '}')
                .replace('-', "");
            if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                normalize_uuid(&hex).ok_or(NOT_A_UUID)
            } else {
                Err(NOT_A_UUID)
            }
        }
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|v| {
                uuid::Uuid::from_u128(u128::from(v))
                    .hyphenated()
                    .to_string()
            })
            .ok_or(NOT_A_UUID),
        Some(_) => Err(NOT_A_UUID),
    }
}

/// BooleanField(required=False, default=None), without allow_null.
fn bool_field(item: &Map<String, Value>, name: &str) -> Result<Option<bool>, &'static str> {
    const TRUE: [&str; 10] = [
        "t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
    ];
    const FALSE: [&str; 10] = [
        "f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE",
    ];
    match item.get(name) {
        None => Ok(None),
        Some(Value::Null) => Err(NULL),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Some(false)),
        Some(Value::String(s))
            if TRUE.contains(&s.as_str()) || ["on", "On", "ON", "1"].contains(&s.as_str()) =>
        {
            Ok(Some(true))
        }
        Some(Value::String(s))
            if FALSE.contains(&s.as_str()) || ["off", "Off", "OFF", "0"].contains(&s.as_str()) =>
        {
            Ok(Some(false))
        }
        Some(_) => Err(NOT_A_BOOLEAN),
    }
}

/// Runs one item through the child serializer: its value, or its error object.
fn validate_each<T>(
    data: &Value,
    mut child: impl FnMut(&Map<String, Value>, &mut Map<String, Value>) -> Option<T>,
) -> Result<Vec<T>, BodyError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut failed = false;
    for item in items(data)? {
        let Value::Object(fields) = item else {
            failed = true;
            errors.push(json!({"non_field_errors": [format!(
                "Invalid data. Expected a dictionary, but got {}.",
                python_type(item)
            )]}));
            continue;
        };
        let mut item_errors = Map::new();
        match child(fields, &mut item_errors) {
            Some(value) if item_errors.is_empty() => {
                out.push(value);
                errors.push(json!({}));
            }
            _ => {
                failed = true;
                errors.push(Value::Object(item_errors));
            }
        }
    }
    if failed {
        Err(BodyError::Invalid(Value::Array(errors)))
    } else {
        Ok(out)
    }
}

fn note<T>(errors: &mut Map<String, Value>, name: &str, result: Result<T, &str>) -> Option<T> {
    result
        .map_err(|message| errors.insert(name.to_string(), json!([message])))
        .ok()
}

/// ProgramEnrollmentCreateRequestSerializer (POST, PUT) / ProgramEnrollmentUpdateRequestSerializer (PATCH).
pub fn program_requests(
    data: &Value,
    method: WriteMethod,
) -> Result<Vec<ProgramRequest>, BodyError> {
    validate_each(data, |item, errors| {
        let key = note(errors, "student_key", char_field(item, "student_key"));
        let status = note(errors, "status", char_field(item, "status"));
        let curriculum_uuid = match method {
            WriteMethod::Patch => Some(None),
            _ => note(
                errors,
                "curriculum_uuid",
                uuid_field(item, "curriculum_uuid"),
            )
            .map(Some),
        };
        Some(ProgramRequest {
            key: key?,
            status: status?,
            curriculum_uuid: curriculum_uuid?,
        })
    })
}

/// ProgramCourseEnrollmentRequestSerializer (every method).
pub fn course_requests(data: &Value) -> Result<Vec<CourseRequest>, BodyError> {
    validate_each(data, |item, errors| {
        let key = note(errors, "student_key", char_field(item, "student_key"));
        let status = note(errors, "status", char_field(item, "status"));
        let course_staff = note(errors, "course_staff", bool_field(item, "course_staff"));
        Some(CourseRequest {
            key: key?,
            status: status?,
            course_staff: course_staff?,
        })
    })
}

/// How many items `request.data` holds, for the 413 check that follows validation (facts §2.3).
pub fn len(data: &Value) -> usize {
    match data {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_items_get_drf_errors_and_valid_ones_an_empty_object() {
        let data = json!([
            {"student_key": " k1 ", "status": "enrolled", "curriculum_uuid": "AAAAAAAA-1111-2222-3333-444444444444"},
            {"status": "enrolled", "curriculum_uuid": "x"},
            "oops"
        ]);
        let Err(BodyError::Invalid(errors)) = program_requests(&data, WriteMethod::Post) else {
            panic!("expected a 400");
        };
        assert_eq!(
            errors,
            json!([{}, {"student_key": [REQUIRED], "curriculum_uuid": [NOT_A_UUID]},
                   {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}])
        );
    }

    #[test]
    fn keys_are_trimmed_and_curricula_normalised() {
        let data = json!([{"student_key": " k1 ", "status": "new", "curriculum_uuid": "{AAAAAAAA111122223333444444444444}"}]);
        let requests = program_requests(&data, WriteMethod::Put).expect("valid");
        assert_eq!(requests[0].key, "k1");
        assert_eq!(requests[0].status, "new");
        assert_eq!(
            requests[0].curriculum_uuid.as_deref(),
            Some("aaaaaaaa-1111-2222-3333-444444444444")
        );
        // PATCH has no curriculum field; an unknown field is ignored.
        let data = json!([{"student_key": "k1", "status": "ended", "external_user_key": "x"}]);
        assert!(program_requests(&data, WriteMethod::Patch).is_ok());
        // The docstring's `external_user_key` instead of `student_key` is a 400.
        let data = json!([{"external_user_key": "k1", "status": "ended"}]);
        assert!(program_requests(&data, WriteMethod::Patch).is_err());
    }

    #[test]
    fn course_staff_is_a_drf_boolean_and_null_is_refused() {
        let ok = json!([{"student_key": "a", "status": "active", "course_staff": "yes"}]);
        assert_eq!(
            course_requests(&ok).expect("valid")[0].course_staff,
            Some(true)
        );
        let null = json!([{"student_key": "a", "status": "active", "course_staff": null}]);
        assert_eq!(
            course_requests(&null),
            Err(BodyError::Invalid(json!([{"course_staff": [NULL]}])))
        );
    }

    #[test]
    fn a_body_that_is_not_a_list_names_its_python_type() {
        let Err(BodyError::Invalid(errors)) = course_requests(&json!({"a": 1})) else {
            panic!("expected a 400");
        };
        assert_eq!(
            errors,
            json!({"non_field_errors": ["Expected a list of items but got type \"dict\"."]})
        );
    }
}
