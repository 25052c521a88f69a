//! Reaching PostgreSQL at start-up, and saying why not in the operator's words (issue 16): "connection refused",
//! "password authentication failed", "database does not exist", within seconds, never the password and never the
//! server's source line numbers. sqlx's pool would retry a refused connection until its acquire timeout (10 s) and
//! then report only "pool timed out"; one direct attempt first keeps the real cause.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgDatabaseError};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// How long a refused connection is retried (a server restarting) before start-up reports it.
pub const REFUSED_RETRY_WINDOW: Duration = Duration::from_millis(2500);

/// How long one connection attempt may take before the server counts as not answering (a firewall dropping
/// packets, a wrong host): the pool's own acquire timeout.
pub const NO_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection could not be opened. Built from the server's message (never its source line) and the
/// connection options (never the password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectCause {
    #[error(
        "connection refused by {addr}: is PostgreSQL running there, and are the host and port right?"
    )]
    Refused { addr: String },
    #[error(
        "no answer from {addr} within {} s: a firewall dropping packets, or the wrong host?",
        .waited.as_secs()
    )]
    NoAnswer { addr: String, waited: Duration },
    #[error(
        "password authentication failed for user \"{user}\": check the password in database.url \
         (ROSTERSYNC__DATABASE__URL)"
    )]
    BadPassword { user: String },
    #[error(
        "database \"{name}\" does not exist on {addr}: create it, or fix the database name in the URL"
    )]
    NoDatabase { name: String, addr: String },
    #[error("role \"{user}\" does not exist on {addr}: create it, or fix the user name in the URL")]
    NoRole { user: String, addr: String },
    /// Any other refusal by the server (pg_hba.conf has no entry, too many connections, ...): its own message.
    #[error("the server refused the connection: {message} (SQLSTATE {code})")]
    Server { code: String, message: String },
    #[error("cannot reach {addr}: {message}")]
    Network { addr: String, message: String },
    #[error("TLS with {addr} failed: {message}")]
    Tls { addr: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl ConnectCause {
    /// Classifies a connection error. `sqlx::Error`'s own Display is not used for server errors: it appends
    /// PostgreSQL's source line (`at line 1138`), which means nothing to an operator.
    pub fn from_sqlx(error: &sqlx::Error, options: &PgConnectOptions) -> ConnectCause {
        let addr = address(options);
        match error {
            sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                ConnectCause::Refused { addr }
            }
            sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                ConnectCause::NoAnswer {
                    addr,
                    waited: NO_ANSWER_TIMEOUT,
                }
            }
            sqlx::Error::Io(e) => ConnectCause::Network {
                addr,
                message: e.to_string(),
            },
            sqlx::Error::Tls(e) => ConnectCause::Tls {
                addr,
                message: e.to_string(),
            },
            sqlx::Error::PoolTimedOut => ConnectCause::NoAnswer {
                addr,
                waited: NO_ANSWER_TIMEOUT,
            },
            sqlx::Error::Database(db) => {
                let (code, message) = match db.try_downcast_ref::<PgDatabaseError>() {
                    Some(pg) => (pg.code().to_owned(), pg.message().to_owned()),
                    None => (
                        db.code().map(|c| c.into_owned()).unwrap_or_default(),
                        db.message().to_owned(),
                    ),
                };
                let user = options.get_username().to_owned();
                match code.as_str() {
                    // invalid_password
                    "28P01" => ConnectCause::BadPassword { user },
                    // invalid_catalog_name
                    "3D000" => ConnectCause::NoDatabase {
                        name: options
                            .get_database()
                            .map(str::to_owned)
                            .unwrap_or_else(|| user.clone()),
                        addr,
                    },
                    // invalid_authorization_specification: also sent for an unknown role; pg_hba.conf refusals
                    // keep the server's message, which names the host, user and database but no secret.
                    "28000"
                        if message.starts_with("role ") && message.ends_with("does not exist") =>
                    {
                        ConnectCause::NoRole { user, addr }
                    }
                    _ => ConnectCause::Server { code, message },
                }
            }
            other => ConnectCause::Other(other.to_string()),
        }
    }

    /// Worth another attempt within [`REFUSED_RETRY_WINDOW`]: the server may be (re)starting.
    fn is_transient(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            sqlx::Error::Database(db) => {
                // too_many_connections, cannot_connect_now (starting up)
                matches!(db.code().as_deref(), Some("53300" | "57P03"))
            }
            _ => false,
        }
    }
}

/// A query error as an operator reads it: a server error is its message and SQLSTATE, without the PostgreSQL
/// source line that `sqlx::Error`'s Display appends; anything else as sqlx says it.
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// A migration error, with a server error described as in [`describe`].
pub fn describe_migrate(error: &sqlx::migrate::MigrateError) -> String {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(e) => describe(e),
        MigrateError::ExecuteMigration(e, version) => {
            format!("migration {version}: {}", describe(e))
        }
        other => other.to_string(),
    }
}

/// `host:port`, or the Unix socket path: where the connection was tried.
pub fn address(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// One connection, retried while it is refused for at most [`REFUSED_RETRY_WINDOW`]; each attempt bounded by
/// [`NO_ANSWER_TIMEOUT`]. The connection is closed again: this only proves that the pool can connect.
pub async fn probe(options: &PgConnectOptions) -> Result<(), ConnectCause> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let error = match tokio::time::timeout(NO_ANSWER_TIMEOUT, options.connect()).await {
            Ok(Ok(conn)) => {
                let conn: PgConnection = conn;
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(ConnectCause::NoAnswer {
                    addr: address(options),
                    waited: NO_ANSWER_TIMEOUT,
                });
            }
        };
        if !ConnectCause::is_transient(&error) || started.elapsed() + backoff > REFUSED_RETRY_WINDOW
        {
            return Err(ConnectCause::from_sqlx(&error, options));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(800));
    }
}
