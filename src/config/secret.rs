//! The two secrets in the settings: the Canvas token (inline or a file re-read on rotation) and database URLs
//! (whose password never appears in `Display` or `Debug`).

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::error::{ConfigError, invalid};

/// Where the Canvas token comes from. The file form is re-read when Canvas rejects the token (rotation).
#[derive(Clone)]
pub enum TokenSource {
    Inline(SecretString),
    File(PathBuf),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Inline(_) => f.write_str("Inline([REDACTED])"),
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl TokenSource {
    /// Reads the token. A file's single trailing newline (as `kubectl create secret --from-file` leaves it) is
    /// stripped; an empty token is an error. The value never appears in the error.
    pub fn load(&self) -> Result<SecretString, ConfigError> {
        match self {
            TokenSource::Inline(secret) => {
                if secret.expose_secret().trim().is_empty() {
                    return Err(invalid("canvas.token", "canvas token is empty"));
                }
                Ok(secret.clone())
            }
            TokenSource::File(path) => {
                read_secret_file(path, "canvas.token_file", "canvas token", "token")
            }
        }
    }

    /// Policy for token files readable by group or others: warn (like systemd-creds' "insecure" notice) but run,
    /// because Kubernetes Secret volumes default to 0644 and refusing them would break existing manifests. A file
    /// readable by the process's own group only (mode 0440 or 0640 with the pod's `fsGroup`, as the shipped
    /// Deployment mounts it) is not worth a warning: only this pod's group can read it. The warning says how to
    /// silence it, so that it is read once and acted on rather than ignored at every start.
    pub fn permission_warning(&self) -> Option<String> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let TokenSource::File(path) = self else {
            return None;
        };
        let metadata = std::fs::metadata(path).ok()?;
        let mode = metadata.permissions().mode() & 0o777;
        let own_group = process_groups().contains(&metadata.gid());
        let exposed = mode & 0o007 != 0 || mode & 0o020 != 0 || (mode & 0o040 != 0 && !own_group);
        exposed.then(|| {
            format!(
                "canvas.token_file `{}` is readable by group or others (mode {mode:o}, group {}); restrict it to 0400 \
                 or 0600 (`chmod 0600 {}`); in Kubernetes, mount the Secret with `defaultMode: 0440` and set the \
                 pod's `securityContext.fsGroup` (a file readable by this process's own group only is accepted \
                 without this warning)",
                path.display(),
                metadata.gid(),
                path.display(),
            )
        })
    }
}

/// The process's effective group and supplementary groups.
fn process_groups() -> Vec<u32> {
    // SAFETY: getegid has no preconditions; getgroups(0, null) returns the count, then fills a buffer that large.
    unsafe {
        let mut groups = vec![libc::getegid()];
        let count = libc::getgroups(0, std::ptr::null_mut());
        if count > 0 {
            let mut buffer = vec![0 as libc::gid_t; count as usize];
            let filled = libc::getgroups(count, buffer.as_mut_ptr());
            if filled > 0 {
                groups.extend(buffer.into_iter().take(filled as usize));
            }
        }
        groups
    }
}

/// Reads a secret kept in a file. A single trailing newline (as `kubectl create secret --from-file` leaves it) is
/// stripped; an empty value, surrounding whitespace or several lines is an error naming `key`, never the value.
fn read_secret_file(
    path: &std::path::Path,
    key: &'static str,
    what: &str,
    short: &str,
) -> Result<SecretString, ConfigError> {
    let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    let value = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw);
    if value.trim().is_empty() {
        return Err(invalid(
            key,
            format!("{what} is empty (file `{}`)", path.display()),
        ));
    }
    if value.contains(['\n', '\r']) || value != value.trim() {
        return Err(invalid(
            key,
            format!(
                "the {short} in `{}` has surrounding whitespace or several lines; it must hold only the {short} \
                 (one trailing newline is allowed)",
                path.display()
            ),
        ));
    }
    Ok(SecretString::from(value.to_owned()))
}

/// Where the Open edX OAuth2 client secret comes from (`openedx.client_secret` or `openedx.client_secret_file`).
/// The file form is re-read whenever a token is requested, so a rotated secret is picked up.
#[derive(Clone)]
pub enum ClientSecretSource {
    Inline(SecretString),
    File(PathBuf),
}

impl fmt::Debug for ClientSecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSecretSource::Inline(_) => f.write_str("Inline([REDACTED])"),
            ClientSecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl ClientSecretSource {
    /// Reads the secret; the value never appears in the error.
    pub fn load(&self) -> Result<SecretString, ConfigError> {
        match self {
            ClientSecretSource::Inline(secret) => {
                if secret.expose_secret().trim().is_empty() {
                    return Err(invalid(
                        "openedx.client_secret",
                        "the client secret is empty",
                    ));
                }
                Ok(secret.clone())
            }
            ClientSecretSource::File(path) => read_secret_file(
                path,
                "openedx.client_secret_file",
                "the client secret",
                "secret",
            ),
        }
    }
}

/// A PostgreSQL URL. Its password is a secret: `Display` shows the URL without it.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }
    pub(super) fn from_secret(url: SecretString) -> Self {
        Self(url)
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(self.expose()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("****"));
                }
                let without_query = url
                    .as_str()
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                f.write_str(&without_query)
            }
            Err(_) => f.write_str("<unparsable database url>"),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_trailing_newline_is_stripped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").expect("write");
        let token = TokenSource::File(path.clone()).load().expect("load");
        assert_eq!(token.expose_secret(), "abc123");
        std::fs::write(&path, "\n").expect("write");
        let err = TokenSource::File(path)
            .load()
            .expect_err("empty")
            .to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn database_url_display_hides_password() {
        let url = DatabaseUrl::new("postgres://rs:secretpw@db.example:5432/rs?sslmode=require");
        let shown = url.to_string();
        assert!(!shown.contains("secretpw"), "{shown}");
        assert!(shown.contains("db.example:5432/rs"), "{shown}");
    }
}
