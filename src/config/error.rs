//! The configuration error and its text: every message names the key and what is allowed, never a secret value
//! (the TOML parser's quoted source lines are dropped, since they may hold the token or a database password).

use std::borrow::Cow;
use std::path::PathBuf;

/// A configuration problem. Messages name the key and what is allowed, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    /// `key` is the dotted path, with an index for an entry of an array of tables (`schedule.pause[0].to`).
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        key: Cow<'static, str>,
        message: String,
    },
    #[error("configuration: cannot read {key} `{path}`: {source}")]
    File {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A loader error without the source lines the TOML parser quotes (they may hold the token or a database password):
/// the line number stays, and the key on that line is named from the text, never its value.
pub(super) fn load_error(e: &config::ConfigError, source: Option<&str>) -> ConfigError {
    let full = e.to_string();
    let mut kept: Vec<&str> = full
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('|')
                || t.split_once('|')
                    .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit())))
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    let line_no = full
        .split("at line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let mut located = String::new();
    if let (Some(n), Some(text)) = (line_no, source) {
        let mut section = String::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            }
            if i + 1 == n {
                if t.starts_with('[') {
                    located = format!("table [{section}]");
                } else if let Some((key, _)) = t.split_once('=') {
                    let key = key.trim().trim_matches('"');
                    if !key.is_empty() && key.len() < 100 && !key.contains(char::is_whitespace) {
                        located = if section.is_empty() {
                            key.to_owned()
                        } else {
                            format!("{section}.{key}")
                        };
                    }
                }
                break;
            }
        }
    }
    // Number overflows come without a position: find the literal that does not fit.
    if located.is_empty()
        && (full.contains("overflow") || full.contains("too large"))
        && let Some(text) = source
    {
        let mut section = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
                continue;
            }
            let Some((key, value)) = t.split_once('=') else {
                continue;
            };
            let value = value
                .split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .replace('_', "");
            let numeric = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            let float = value.contains(['.', 'e', 'E']);
            let fits = if float {
                value.parse::<f64>().is_ok_and(f64::is_finite)
            } else {
                value.parse::<i64>().is_ok()
            };
            if numeric && !fits {
                let key = key.trim();
                located = if section.is_empty() {
                    key.to_owned()
                } else {
                    format!("{section}.{key}")
                };
                break;
            }
        }
    }
    if kept.is_empty() {
        kept.push("the configuration could not be parsed");
    }
    let mut message = kept.join(": ");
    if located.starts_with("table ") {
        message.push_str(&format!(" ({located})"));
    } else if !located.is_empty() {
        message.push_str(&format!(" (key `{located}`; the value is not shown)"));
    }
    ConfigError::Load(message)
}

pub(super) fn invalid(
    key: impl Into<Cow<'static, str>>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}
