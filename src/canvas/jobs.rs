//! Canvas's asynchronous jobs, for large accounts: the provisioning report (facts §9: start, poll, download the
//! enrollments CSV) and SIS imports (facts §8: upload a CSV, poll to completion, read `processing_errors`).
//!
//! A token may lack the permission for either ("Import SIS data", reports): an unchallenged 401, a 403 or a 404
//! comes back as an error whose `refuses_path()` is true, never as a rejected token, so the cycle can take the
//! per-change or per-course path. A start whose answer never came is not re-sent before the job is looked for
//! among the account's recent ones.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::client::{Body, On401, decode, encode_account};
use super::{CanvasClient, CanvasError};

/// An account report (`GET /accounts/:id/reports/:report/:id`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AccountReport {
    pub id: u64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub file_url: Option<String>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Attachment {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
}

impl AccountReport {
    /// `complete`; `error`, `aborted` and `deleted` end it without a file.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "complete" | "error" | "aborted" | "deleted"
        )
    }
}

/// A SIS import (`GET /accounts/:id/sis_imports/:id`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SisImport {
    pub id: u64,
    #[serde(default)]
    pub workflow_state: String,
    #[serde(default)]
    pub progress: Option<f64>,
    /// `[[file, message], ...]`
    #[serde(default)]
    pub processing_errors: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub processing_warnings: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub csv_attachments: Option<Vec<Attachment>>,
}

/// `GET /accounts/:id/sis_imports` wraps its list (facts §8).
#[derive(Debug, Deserialize)]
struct SisImportList {
    #[serde(default)]
    sis_imports: Vec<SisImport>,
}

/// How far before our own clock a job Canvas stamped may be and still be the one we started: clocks differ.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// How many of the newest jobs are looked through for one whose start was not answered.
const RECENT_JOBS: u32 = 20;

/// Whether Canvas stamped a job no earlier than `since` (less the clock skew).
fn created_since(created_at: Option<&str>, since: DateTime<Utc>) -> bool {
    created_at
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.with_timezone(&Utc) >= since - CLOCK_SKEW)
}

/// A report parameter set to true (`true`, `"true"`, `"1"`, `"on"`).
fn truthy(parameters: Option<&serde_json::Value>, key: &str) -> bool {
    match parameters.and_then(|p| p.get(key)) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => matches!(s.as_str(), "true" | "1" | "on" | "yes"),
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

impl SisImport {
    pub fn is_finished(&self) -> bool {
        matches!(
            self.workflow_state.as_str(),
            "imported"
                | "imported_with_messages"
                | "failed"
                | "failed_with_messages"
                | "aborted"
                | "restored"
                | "partially_restored"
        )
    }
    /// Whether the rows were processed (possibly with per-row errors).
    pub fn imported(&self) -> bool {
        matches!(
            self.workflow_state.as_str(),
            "imported" | "imported_with_messages"
        )
    }
    pub fn error_messages(&self) -> Vec<String> {
        self.processing_errors
            .iter()
            .flatten()
            .map(|pair| pair.last().cloned().unwrap_or_default())
            .collect()
    }
}

/// Largest file a download may be: a university's enrollments CSV is a few hundred MB.
const MAX_DOWNLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Polls with a growing interval (0.5 s up to 10 s) until `done`, or fails after `timeout`.
async fn poll<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut fetch: F,
    done: impl Fn(&T) -> bool,
) -> Result<T, CanvasError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CanvasError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(500);
    loop {
        let current = fetch().await?;
        if done(&current) {
            return Ok(current);
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Err(CanvasError::JobTimeout {
                what: what.to_owned(),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

impl CanvasClient {
    /// Starts the provisioning report with enrollments, including concluded ones (`include_deleted` adds the
    /// `completed` rows the default leaves out, facts §9).
    pub async fn start_provisioning_report(
        &self,
        account_id: &str,
    ) -> Result<AccountReport, CanvasError> {
        let url = self.api_url(&format!(
            "accounts/{}/reports/provisioning_csv",
            encode_account(account_id)
        ))?;
        let form = vec![
            ("parameters[enrollments]".to_owned(), "true".to_owned()),
            ("parameters[include_deleted]".to_owned(), "true".to_owned()),
        ];
        let since = Utc::now();
        self.start_job(url, Body::Form(&form), "report", || {
            self.find_started_report(account_id, since)
        })
        .await
    }

    /// The provisioning report with our parameters that Canvas created since `since`, if any.
    async fn find_started_report(
        &self,
        account_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<AccountReport>, CanvasError> {
        let mut url = self.api_url(&format!(
            "accounts/{}/reports/provisioning_csv",
            encode_account(account_id)
        ))?;
        url.query_pairs_mut()
            .append_pair("per_page", &RECENT_JOBS.to_string());
        let answer = self
            .request_as(Method::GET, url, None, On401::TokenIfChallenged)
            .await?;
        let reports: Vec<AccountReport> = decode(&answer.body, "report list")?;
        Ok(reports.into_iter().find(|r| {
            created_since(r.created_at.as_deref(), since)
                && truthy(r.parameters.as_ref(), "enrollments")
                && truthy(r.parameters.as_ref(), "include_deleted")
        }))
    }

    pub async fn get_provisioning_report(
        &self,
        account_id: &str,
        id: u64,
    ) -> Result<AccountReport, CanvasError> {
        let url = self.api_url(&format!(
            "accounts/{}/reports/provisioning_csv/{id}",
            encode_account(account_id)
        ))?;
        let answer = self
            .request_as(Method::GET, url, None, On401::TokenIfChallenged)
            .await?;
        decode(&answer.body, "report")
    }

    /// Runs the report to completion and returns the CSV bytes.
    pub async fn provisioning_enrollments_csv(
        &self,
        account_id: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, CanvasError> {
        let started = self.start_provisioning_report(account_id).await?;
        let report = if started.is_finished() {
            started
        } else {
            poll(
                timeout,
                "the provisioning report",
                || self.get_provisioning_report(account_id, started.id),
                AccountReport::is_finished,
            )
            .await?
        };
        if report.status != "complete" {
            return Err(CanvasError::Decode(format!(
                "the provisioning report ended `{}` without a file",
                report.status
            )));
        }
        let link = report
            .attachment
            .as_ref()
            .and_then(|a| a.url.clone())
            .or(report.file_url.clone())
            .ok_or_else(|| {
                CanvasError::Decode("the finished provisioning report has no file URL".into())
            })?;
        let url = Url::parse(&link)
            .or_else(|_| self.options().base_url.join(&link))
            .map_err(|e| CanvasError::Decode(format!("report file URL `{link}`: {e}")))?;
        self.download(url, MAX_DOWNLOAD_BYTES).await
    }

    /// Uploads an enrollments CSV as a SIS import (`instructure_csv`).
    pub async fn start_sis_import(
        &self,
        account_id: &str,
        csv: &[u8],
    ) -> Result<SisImport, CanvasError> {
        let mut url = self.api_url(&format!(
            "accounts/{}/sis_imports",
            encode_account(account_id)
        ))?;
        url.query_pairs_mut()
            .append_pair("import_type", "instructure_csv")
            .append_pair("extension", "csv");
        let body = Body::Raw {
            content_type: "text/csv; charset=utf-8",
            bytes: csv,
        };
        let since = Utc::now();
        self.start_job(url, body, "SIS import", || {
            self.find_started_import(account_id, since, csv.len() as u64)
        })
        .await
    }

    /// The SIS import of a file of our size that Canvas created since `since`, if any.
    async fn find_started_import(
        &self,
        account_id: &str,
        since: DateTime<Utc>,
        size: u64,
    ) -> Result<Option<SisImport>, CanvasError> {
        let imports = self
            .list_sis_imports(account_id, Some(since - CLOCK_SKEW))
            .await?;
        Ok(imports.into_iter().find(|i| {
            created_since(i.created_at.as_deref(), since)
                && i.csv_attachments
                    .iter()
                    .flatten()
                    .any(|a| a.size == Some(size))
        }))
    }

    /// The account's newest SIS imports (`GET /accounts/:id/sis_imports`, newest first). Also the probe `check`
    /// uses: Canvas lists imports only to a token that may run them.
    pub async fn list_sis_imports(
        &self,
        account_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<SisImport>, CanvasError> {
        let mut url = self.api_url(&format!(
            "accounts/{}/sis_imports",
            encode_account(account_id)
        ))?;
        url.query_pairs_mut()
            .append_pair("per_page", &RECENT_JOBS.to_string());
        if let Some(since) = since {
            url.query_pairs_mut().append_pair(
                "created_since",
                &since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        let answer = self
            .request_as(Method::GET, url, None, On401::TokenIfChallenged)
            .await?;
        let list: SisImportList = decode(&answer.body, "SIS import list")?;
        Ok(list.sis_imports)
    }

    /// `GET /accounts/:id/reports`: the reports the token may run (a token without report rights is refused).
    pub async fn list_available_reports(
        &self,
        account_id: &str,
    ) -> Result<Vec<serde_json::Value>, CanvasError> {
        let url = self.api_url(&format!("accounts/{}/reports", encode_account(account_id)))?;
        let answer = self
            .request_as(Method::GET, url, None, On401::TokenIfChallenged)
            .await?;
        decode(&answer.body, "report list")
    }

    pub async fn get_sis_import(
        &self,
        account_id: &str,
        id: u64,
    ) -> Result<SisImport, CanvasError> {
        let url = self.api_url(&format!(
            "accounts/{}/sis_imports/{id}",
            encode_account(account_id)
        ))?;
        let answer = self
            .request_as(Method::GET, url, None, On401::TokenIfChallenged)
            .await?;
        decode(&answer.body, "SIS import")
    }

    /// Uploads and polls a SIS import to the end.
    pub async fn run_sis_import(
        &self,
        account_id: &str,
        csv: &[u8],
        timeout: Duration,
    ) -> Result<SisImport, CanvasError> {
        let started = self.start_sis_import(account_id, csv).await?;
        self.wait_for_sis_import(account_id, started, timeout).await
    }

    /// Polls a started SIS import to the end.
    pub async fn wait_for_sis_import(
        &self,
        account_id: &str,
        started: SisImport,
        timeout: Duration,
    ) -> Result<SisImport, CanvasError> {
        if started.is_finished() {
            return Ok(started);
        }
        poll(
            timeout,
            "the SIS import",
            || self.get_sis_import(account_id, started.id),
            SisImport::is_finished,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_ours_only_when_stamped_after_the_attempt_less_the_skew() {
        let since = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert!(created_since(Some("2026-11-30T12:00:01Z"), since));
        assert!(
            created_since(Some("2026-11-30T06:57:00-05:00"), since),
            "skew"
        );
        assert!(!created_since(Some("2026-11-30T11:50:00Z"), since));
        assert!(!created_since(None, since));
        assert!(!created_since(Some("yesterday"), since));
    }

    #[test]
    fn report_parameters_are_read_as_canvas_writes_them() {
        let p = serde_json::json!({"enrollments": "true", "include_deleted": true, "users": "0"});
        assert!(truthy(Some(&p), "enrollments"));
        assert!(truthy(Some(&p), "include_deleted"));
        assert!(!truthy(Some(&p), "users"));
        assert!(!truthy(Some(&p), "courses"));
        assert!(!truthy(None, "enrollments"));
    }
}
