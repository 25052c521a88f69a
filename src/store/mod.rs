//! rostersync's own PostgreSQL schema: the run records, the audit log, the leader lock and the operator's state
//! (pauses, exceptions).

pub mod audit;
pub mod exceptions;
pub mod fingerprints;
pub mod grace;
pub mod lock;
pub mod missing;
pub mod openedx_learners;
pub mod pauses;
pub mod reach;
pub mod runs;

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseUrl;

pub use audit::{AuditLog, AuditOutcome, AuditRow};
pub use reach::ConnectCause;
pub use runs::{Approval, RunStatus, Runs};

/// A database problem. Connection errors name which database, where (password hidden) and why.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the {which} database at {url}: {cause}")]
    Connect {
        which: &'static str,
        url: String,
        cause: ConnectCause,
    },
    #[error("{which} database URL {url} is not usable: {source}")]
    BadUrl {
        which: &'static str,
        url: String,
        source: sqlx::Error,
    },
    #[error("cannot apply rostersync's migrations: {}", reach::describe_migrate(.0))]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("rostersync database: {context}: {}", reach::describe(.source))]
    Query {
        context: &'static str,
        source: sqlx::Error,
    },
}

impl DbError {
    pub fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |source| DbError::Query { context, source }
    }
}

pub fn connect_options(
    which: &'static str,
    url: &DatabaseUrl,
) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(url.expose())
        .map(|o| o.application_name("rostersync"))
        .map_err(|source| DbError::BadUrl {
            which,
            url: url.to_string(),
            source,
        })
}

/// Opens a pool and checks that the server answers, so that a wrong URL fails at start-up with a clear message:
/// one direct attempt first ([`reach::probe`]) says why within seconds (refused, bad password, no such database)
/// instead of the pool's "timed out" after 10 s.
pub async fn connect(
    which: &'static str,
    url: &DatabaseUrl,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    connect_with(which, url, max_connections, |o| o).await
}

/// [`connect`], with the connection options adjusted by `tune` (e.g. no slow-statement warning for a query that
/// streams a large result to a slow reader, such as `rostersync audit`).
pub async fn connect_with(
    which: &'static str,
    url: &DatabaseUrl,
    max_connections: u32,
    tune: impl FnOnce(PgConnectOptions) -> PgConnectOptions,
) -> Result<PgPool, DbError> {
    let options = tune(connect_options(which, url)?);
    let failed = |cause| DbError::Connect {
        which,
        url: url.to_string(),
        cause,
    };
    reach::probe(&options).await.map_err(failed)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(reach::NO_ANSWER_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|source| failed(ConnectCause::from_sqlx(&source, &options)))
}

/// Creates or upgrades the `rostersync` schema.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}
