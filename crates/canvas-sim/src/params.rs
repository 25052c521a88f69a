//! Request parameters the way Rails sees them: `key=v` is a string, `key[]=v` an array,
//! `key[sub]=v` a nested hash. Query string and body (form or JSON) are merged, the body winning,
//! as in Rails' `params`.

use serde_json::Value;

/// How one top-level parameter arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamShape {
    Absent,
    Scalar(String),
    Array(Vec<String>),
    /// `key[sub]=...` or JSON objects: neither a string nor an array of strings.
    Nested,
}

/// Ordered `(name, value)` pairs with names as written (`state[]`, `enrollment[user_id]`).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Names whose JSON value was neither a string, number, bool nor an array of those.
    nested: Vec<String>,
}

impl Params {
    /// Parses an `application/x-www-form-urlencoded` string (query strings too).
    pub fn from_urlencoded(text: &str) -> Params {
        let pairs = url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Params {
            pairs,
            nested: Vec::new(),
        }
    }

    /// Flattens a JSON object body into Rails-style names: `{"enrollment":{"user_id":5}}` becomes
    /// `enrollment[user_id]=5`, `{"state":["a"]}` becomes `state[]=a`.
    pub fn from_json(value: &Value) -> Params {
        let mut params = Params::default();
        if let Value::Object(map) = value {
            for (key, v) in map {
                params.push_json(key, v);
            }
        }
        params
    }

    fn push_json(&mut self, name: &str, value: &Value) {
        match value {
            Value::Null => {}
            Value::String(s) => self.pairs.push((name.to_string(), s.clone())),
            Value::Number(n) => self.pairs.push((name.to_string(), n.to_string())),
            Value::Bool(b) => self.pairs.push((name.to_string(), b.to_string())),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(_) | Value::Array(_) => self.nested.push(name.to_string()),
                        other => self.push_json(&format!("{name}[]"), other),
                    }
                }
            }
            Value::Object(map) => {
                for (key, v) in map {
                    self.push_json(&format!("{name}[{key}]"), v);
                }
            }
        }
    }

    /// Adds `other`'s pairs after ours, so that `other` wins for scalars.
    pub fn merged_with(mut self, other: Params) -> Params {
        self.pairs.extend(other.pairs);
        self.nested.extend(other.nested);
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The shape of a top-level parameter.
    pub fn shape(&self, name: &str) -> ParamShape {
        let array_name = format!("{name}[]");
        let nested_prefix = format!("{name}[");
        if self.nested.iter().any(|n| n == name) {
            return ParamShape::Nested;
        }
        let mut scalar = None;
        let mut array = Vec::new();
        let mut nested = false;
        for (key, value) in &self.pairs {
            if key == name {
                scalar = Some(value.clone());
            } else if key == &array_name {
                array.push(value.clone());
            } else if key.starts_with(&nested_prefix) {
                nested = true;
            }
        }
        if nested {
            ParamShape::Nested
        } else if !array.is_empty() {
            ParamShape::Array(array)
        } else if let Some(value) = scalar {
            ParamShape::Scalar(value)
        } else {
            ParamShape::Absent
        }
    }

    /// The last scalar value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name[]` values, or the scalar as a one-element list (Rails `Array(params[:x])`).
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.shape(name) {
            ParamShape::Array(values) => values,
            ParamShape::Scalar(value) => vec![value],
            ParamShape::Absent | ParamShape::Nested => Vec::new(),
        }
    }

    /// The sub-keys of a hash parameter: `enrollment[user_id]=5` → `("user_id", "5")`; the last
    /// value wins.
    pub fn hash(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        let prefix = format!("{name}[");
        let mut out = std::collections::BTreeMap::new();
        for (key, value) in &self.pairs {
            if let Some(rest) = key.strip_prefix(&prefix)
                && let Some(sub) = rest.strip_suffix(']')
                && !sub.is_empty()
                && !sub.contains('[')
            {
                out.insert(sub.to_string(), value.clone());
            }
        }
        out
    }

    /// Whether Rails would call `params[name]` present: a non-empty string, array or hash.
    pub fn is_present(&self, name: &str) -> bool {
        match self.shape(name) {
            ParamShape::Absent => false,
            ParamShape::Scalar(value) => !value.trim().is_empty(),
            ParamShape::Array(_) | ParamShape::Nested => true,
        }
    }
}

/// Rails' `value_to_boolean`: `true`, `1`, `on`, `yes`, `t`, `y` (any case) are true.
pub fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "on" | "yes" | "t" | "y"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_rails() {
        let p = Params::from_urlencoded(
            "state%5B%5D=active&state[]=invited&type=StudentEnrollment&role[x]=1",
        );
        assert_eq!(
            p.shape("state"),
            ParamShape::Array(vec!["active".into(), "invited".into()])
        );
        assert_eq!(
            p.shape("type"),
            ParamShape::Scalar("StudentEnrollment".into())
        );
        assert_eq!(p.shape("role"), ParamShape::Nested);
        assert_eq!(p.shape("nothing"), ParamShape::Absent);
    }

    #[test]
    fn json_bodies_flatten_to_rails_names() {
        let body =
            serde_json::json!({"enrollment": {"user_id": 5, "notify": false}, "state": [{"a": 1}]});
        let p = Params::from_json(&body);
        assert_eq!(
            p.hash("enrollment").get("user_id").map(String::as_str),
            Some("5")
        );
        assert_eq!(p.shape("state"), ParamShape::Nested);
    }
}
