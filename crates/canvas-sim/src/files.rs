//! Stored files (report CSVs, SIS import uploads) and their download routes (facts §9: a report's
//! `file_url` is `/accounts/:id/files/:attachment_id/download`, which redirects to the file).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};

use super::errors::ApiError;
use super::jobs::StoredFile;
use super::render::time;
use super::reply::Reply;
use super::store::Store;

impl Store {
    pub(crate) fn store_file(&mut self, filename: &str, content_type: &str, data: Vec<u8>) -> u64 {
        let id = self.files.keys().next_back().map_or(1, |max| max + 1);
        self.files.insert(
            id,
            StoredFile {
                id,
                filename: filename.to_string(),
                content_type: content_type.to_string(),
                data,
                verifier: uuid::Uuid::new_v4().simple().to_string(),
                uuid: uuid::Uuid::new_v4().simple().to_string(),
                created_at: Utc::now(),
            },
        );
        id
    }

    /// The bytes of a stored file (tests read report CSVs this way).
    pub fn file_data(&self, id: u64) -> Option<&[u8]> {
        self.files.get(&id).map(|f| f.data.as_slice())
    }
}

/// The direct download URL (no token needed: the verifier authorizes it).
pub fn download_url(origin: &str, file: &StoredFile) -> String {
    format!(
        "{origin}/files/{}/download?download_frd=1&verifier={}",
        file.id, file.verifier
    )
}

/// Attachment JSON as reports and SIS imports embed it.
pub fn attachment_json(origin: &str, file: &StoredFile) -> Value {
    json!({
        "id": file.id,
        "uuid": file.uuid,
        "display_name": file.filename,
        "filename": file.filename,
        "content-type": file.content_type,
        "url": download_url(origin, file),
        "size": file.data.len(),
        "created_at": time(&file.created_at),
        "updated_at": time(&file.created_at),
        "locked": false,
        "hidden": false,
    })
}

/// `GET /accounts/:account_id/files/:id/download`: 302 to the verifier URL.
pub fn redirect_to_download(store: &Store, origin: &str, raw_id: &str) -> Result<Reply, ApiError> {
    let file = find(store, raw_id)?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&download_url(origin, file)) {
        headers.insert(header::LOCATION, location);
    }
    Ok(Reply {
        status: StatusCode::FOUND,
        headers,
        body: Default::default(),
    })
}

/// `GET /files/:id/download`: the bytes, when the verifier matches or the caller is authenticated.
pub fn download(
    store: &Store,
    raw_id: &str,
    verifier: Option<&str>,
    authenticated: bool,
) -> Result<Reply, ApiError> {
    let file = find(store, raw_id)?;
    if !authenticated && verifier != Some(file.verifier.as_str()) {
        return Err(ApiError::Unauthenticated);
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.filename))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(Reply {
        status: StatusCode::OK,
        headers,
        body: file.data.clone().into(),
    })
}

fn find<'a>(store: &'a Store, raw_id: &str) -> Result<&'a StoredFile, ApiError> {
    let id: u64 = raw_id.trim().parse().map_err(|_| ApiError::NotFound)?;
    store.files.get(&id).ok_or(ApiError::NotFound)
}
