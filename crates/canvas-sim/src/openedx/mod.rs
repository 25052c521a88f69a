//! openedx-sim: an in-process Open edX LMS for rostersync's second target, following `openedx-api-facts.md`, quirks
//! included — the OAuth2 client-credentials token endpoint (JWTs with `expires_in`), the program-enrollment API
//! (cursor-paginated reads; POST/PATCH/PUT writes of at most 25 keys with per-key results answered 200/207/422;
//! the 413 that comes after validation; `duplicated`, `conflict`, `not-in-program`, `not-found`; 404s with
//! `error_code`), program-course enrollments and the course enrollments they drive, waiting enrollments and their
//! 60-day expiry, case-insensitive external keys, retired keys; plus request counters, fault rules, latency and a
//! lagging read replica, shared with canvas-sim (`recorder.rs`, `faults.rs`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use canvas_sim::openedx::{OpenEdxOptions, OpenEdxSeed, SeedProgram, spawn};
//! let seed = OpenEdxSeed::default().program(
//!     SeedProgram::new("00000000-1111-2222-3333-444444444444", "MITx")
//!         .curriculum("aaaaaaaa-1111-2222-3333-444444444444", &["course-v1:MITx+A+1"]),
//! );
//! let sim = spawn(OpenEdxOptions { seed, ..OpenEdxOptions::default() }).await?;
//! println!("{}/oauth2/access_token", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `server.rs` the pipeline, `routes.rs` the route table, views and cursor pagination, `body.rs` DRF's
//! validation, `write.rs` the per-key write rules, `oauth.rs` tokens, authentication and permission, `store.rs` the
//! LMS tables, `replica.rs` the lagging replica, `seed.rs` the seed, `cli.rs` the `openedx-sim` binary.

mod body;
pub mod cli;
#[cfg(test)]
mod http_tests;
mod oauth;
mod replica;
mod routes;
mod seed;
mod server;
mod store;
pub mod university;
mod write;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::{FaultOptions, FaultState};
use crate::recorder::RequestRecord;
use crate::server::lock;

pub use replica::ReplicaLag;
pub use routes::{DEFAULT_PAGE_SIZE, MAX_ENROLLMENT_RECORDS};
pub use seed::{
    OpenEdxSeed, OpenEdxSeedError, SeedClient, SeedCourseEnrollment, SeedCurriculum, SeedLmsUser,
    SeedProgram, SeedProgramCourseEnrollment, SeedProgramEnrollment, SeedSamlProvider,
};
pub use server::UNMATCHED_ROUTE;
pub use store::{
    COURSE_STATUSES, CourseEnrollment, Curriculum, MASTERS, OpenEdxStore, PROGRAM_STATUSES,
    Program, ProgramCourseEnrollment, ProgramEnrollment, RETIRED_KEY_PREFIX, Tables,
    retired_external_key,
};

/// The client a seed without `oauth_clients` gets, owned by the staff user [`DEFAULT_OWNER`].
pub const DEFAULT_CLIENT_ID: &str = "sim-client";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret";
pub const DEFAULT_OWNER: &str = "sim-service";

/// Route templates, as [`OpenEdxHandle::count`] and fault rules name them.
pub const TOKEN_ROUTE: &str = "/oauth2/access_token";
pub const PROGRAM_ENROLLMENTS_ROUTE: &str =
    "/api/program_enrollments/v1/programs/:program_uuid/enrollments/";
pub const COURSE_ENROLLMENTS_ROUTE: &str =
    "/api/program_enrollments/v1/programs/:program_uuid/courses/:course_id/enrollments/";

/// Everything an openedx-sim starts with.
#[derive(Debug, Clone)]
pub struct OpenEdxOptions {
    pub seed: OpenEdxSeed,
    /// Latency, random errors and hangs, per-route rules (canvas-sim's [`FaultOptions`]).
    pub faults: FaultOptions,
    /// The read replica lagging writes (off by default).
    pub replica_lag: ReplicaLag,
    /// `JWT_ACCESS_TOKEN_EXPIRE_SECONDS` (facts §1.3): 3600 s.
    pub jwt_expires_in: Duration,
    /// The token endpoint's per-IP rate (facts §1.8: 120/min); `None` = unlimited.
    pub token_requests_per_minute: Option<u32>,
    /// `expire_waiting_enrollments` run before every request with this age (facts §6.4: 60 days); `None` = never.
    pub waiting_expiry: Option<Duration>,
    /// `Retry-After` of an injected 429 (facts §7.3).
    pub throttle_retry_after: Duration,
    /// The salt of retired external keys (facts §6.6).
    pub retirement_salt: String,
}

impl Default for OpenEdxOptions {
    fn default() -> Self {
        OpenEdxOptions {
            seed: OpenEdxSeed::default(),
            faults: FaultOptions::default(),
            replica_lag: ReplicaLag::default(),
            jwt_expires_in: Duration::from_secs(3600),
            token_requests_per_minute: Some(120),
            waiting_expiry: Some(Duration::from_secs(60 * 24 * 3600)),
            throttle_retry_after: Duration::from_secs(1),
            retirement_salt: "openedx-sim".to_string(),
        }
    }
}

/// Why an openedx-sim could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Seed(#[from] OpenEdxSeedError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl From<SpawnError> for std::io::Error {
    fn from(error: SpawnError) -> Self {
        match error {
            SpawnError::Bind { source, .. } => source,
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// A running openedx-sim.
pub struct OpenEdxHandle {
    app: Arc<server::App>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Starts an openedx-sim on `127.0.0.1:0` in a tokio task.
pub async fn spawn(opts: OpenEdxOptions) -> std::io::Result<OpenEdxHandle> {
    Ok(spawn_at(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await?)
}

/// Starts an openedx-sim on the given address.
pub async fn spawn_at(
    listen: SocketAddr,
    opts: OpenEdxOptions,
) -> Result<OpenEdxHandle, SpawnError> {
    let settings = store::StoreSettings {
        jwt_expires_in: chrono::Duration::from_std(opts.jwt_expires_in)
            .unwrap_or(chrono::Duration::hours(1)),
        waiting_expiry: opts
            .waiting_expiry
            .and_then(|d| chrono::Duration::from_std(d).ok()),
        retirement_salt: opts.retirement_salt.clone(),
    };
    let store = OpenEdxStore::from_seed(&opts.seed, settings, opts.replica_lag)?;
    let bind_error = |source| SpawnError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let app = Arc::new(server::App {
        store: Mutex::new(store),
        faults: Mutex::new(FaultState::new(opts.faults)),
        recorder: Arc::default(),
        token_limiter: Mutex::new(oauth::TokenLimiter::new(opts.token_requests_per_minute)),
        retry_after: Mutex::new(opts.throttle_retry_after),
    });
    let router = Router::new()
        .fallback(server::serve_request)
        .with_state(app.clone());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "openedx-sim stopped serving");
        }
    });
    Ok(OpenEdxHandle {
        app,
        addr,
        shutdown: Some(shutdown_tx),
        task,
    })
}

impl OpenEdxHandle {
    /// `http://127.0.0.1:PORT`: the LMS root (`openedx.base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every finished request, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.app.recorder.requests()
    }

    /// How many finished requests had this method and route template (e.g. [`PROGRAM_ENROLLMENTS_ROUTE`]).
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.app.recorder.count(method, route)
    }

    pub fn reset_requests(&self) {
        self.app.recorder.reset();
    }

    /// Direct access to the simulated LMS (arrange or inspect state; `link_social_auth`, `retire_user`,
    /// `advance_clock`, `expire_waiting_enrollments`).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut OpenEdxStore) -> R) -> R {
        f(&mut lock(&self.app.store))
    }

    /// Replaces the fault options; rule counters and the RNG start over.
    pub fn set_faults(&self, faults: FaultOptions) {
        *lock(&self.app.faults) = FaultState::new(faults);
    }

    /// Replaces the read-replica lag.
    pub fn set_replica_lag(&self, lag: ReplicaLag) {
        lock(&self.app.store).set_replica_lag(lag);
    }

    /// Moves the LMS clock forward: tokens expire, waiting enrollments age.
    pub fn advance_clock(&self, by: Duration) {
        lock(&self.app.store).advance_clock(by);
    }

    pub fn set_throttle_retry_after(&self, retry_after: Duration) {
        *lock(&self.app.retry_after) = retry_after;
    }

    pub fn set_token_rate_limit(&self, per_minute: Option<u32>) {
        *lock(&self.app.token_limiter) = oauth::TokenLimiter::new(per_minute);
    }

    /// Stops serving: waits briefly for in-flight requests, then aborts.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for OpenEdxHandle {
    fn drop(&mut self) {
        if self.shutdown.is_some() {
            self.task.abort();
        }
    }
}
