//! Strict number and boolean parsing for the raw settings: values are taken as written, never coerced
//! (`max_removal_ratio = true` is not 1.0, `max_removals = 1.9` is not 2, `dry_run = "maybe"` is not `false`).

use std::fmt;

/// Numbers are taken as written: `max_removal_ratio = true` must not become 1.0 (no brake), `max_removals = 1.9`
/// must not become 2. Integers are accepted where a fraction is expected; nothing else converts.
pub(super) fn strict_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct StrictF64;
    impl Visitor<'_> for StrictF64 {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<f64, E> {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<f64, E> {
            Err(E::invalid_type(Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(StrictF64)
}

pub(super) fn strict_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct StrictI64;
    impl Visitor<'_> for StrictI64 {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<i64, E> {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<i64, E> {
            Err(E::invalid_type(Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(StrictI64)
}

pub(super) fn strict_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = strict_i64(d)?;
    u64::try_from(v).map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Signed(v),
            &"a whole number of 0 or more",
        )
    })
}

pub(super) fn strict_opt_f64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<f64>, D::Error> {
    strict_f64(d).map(Some)
}

pub(super) fn strict_opt_u32<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u32>, D::Error> {
    let v = strict_i64(d)?;
    u32::try_from(v).map(Some).map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Signed(v),
            &"a whole number from 0 to 4294967295",
        )
    })
}

/// Booleans from a file or the environment: true/false, yes/no, on/off, 1/0, in any case. Anything else
/// ("maybe", "2", an empty string) is an error naming the key, never a silent `false`.
pub(super) fn strict_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct StrictBool;
    impl Visitor<'_> for StrictBool {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false (also yes/no, on/off, 1/0)")
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(Unexpected::Signed(v), &self)),
            }
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
            }
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_any(StrictBool)
}
