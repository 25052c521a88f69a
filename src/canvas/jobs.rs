//! Canvas's asynchronous jobs, for large accounts: the provisioning report (facts §9: start, poll, download the
//! enrollments CSV) and SIS imports (facts §8: upload a CSV, poll to completion, read `processing_errors`).

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::client::{Body, decode, encode_account};
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
        let answer = self
            .request(Method::POST, url, Some(Body::Form(&form)))
            .await?;
        decode(&answer.body, "report")
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
        let answer = self.request(Method::GET, url, None).await?;
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
        let answer = self
            .request(
                Method::POST,
                url,
                Some(Body::Raw {
                    content_type: "text/csv; charset=utf-8",
                    bytes: csv,
                }),
            )
            .await?;
        decode(&answer.body, "SIS import")
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
        let answer = self.request(Method::GET, url, None).await?;
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
