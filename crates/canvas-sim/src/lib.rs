//! canvas-sim: an in-process Canvas LMS REST API that follows `canvas-api-facts.md`, quirks
//! included, for tests, demos and benchmarks; plus the sample-district generator ([`district`]) and the
//! `canvas-sim` command line ([`cli`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use canvas_sim::{Seed, SeedCourse, SeedUser, SimOptions, spawn};
//! let seed = Seed::default().user(SeedUser::new(10, "Ada Lovelace").with_sis_user_id("S10"))
//!     .course(SeedCourse::new(20, "Math").with_sis_course_id("MATH-1"));
//! let sim = spawn(SimOptions { seed, ..SimOptions::default() }).await?;
//! println!("{}/api/v1/courses/20/enrollments", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! This crate imports nothing of rostersync, so it builds while the daemon changes.
//!
//! Layout: `server.rs` is the per-request pipeline (record, throttle, faults, auth), `routes.rs`
//! the route table and handlers, `store.rs` the in-memory Canvas, `enrollments.rs` and
//! `roles.rs` the API rules over it, `render.rs` the JSON shapes, `json.rs` the JSON response, `reply.rs` a
//! handler's answer, `errors.rs` the error answers, `pagination.rs`, `ids.rs`,
//! `params.rs` the request conventions, `report.rs`, `sis_import.rs`, `files.rs` the async jobs (their state is
//! `jobs.rs`);
//! `district/` generates a sample district (seed + SIS rows), `cli.rs` is the `canvas-sim` binary; `recorder.rs`
//! records requests for both simulators. [`openedx`] is the second simulator, openedx-sim (Open edX program
//! enrollments), built on the same recording, fault rules and latency.
//!
//! Where it knowingly differs from Canvas (each also noted where it is implemented):
//! - the token is an account admin with every permission; no masquerading (§6), no scoped,
//!   expired or revoked tokens, no `Accept: application/json+canvas-string-ids`. A token without a
//!   permission is played by a fault rule: `FaultAction::status(401)` answers Canvas's classic
//!   "user not authorized" body without `WWW-Authenticate` (§7), `status(403)` the newer one;
//! - dates are not simulated: no terms, the date-based state of the self user route equals the
//!   workflow state, and `concluded?` means `workflow_state == completed`;
//! - roles and sections lists use numbered pages (array-backed in Canvas), enrollment lists
//!   bookmarks; the built-in `AccountAdmin` role is not listed;
//! - reports and SIS imports advance when polled (`Store::set_job_polls`, `Store::finish_jobs`);
//!   SIS imports understand enrollments.csv only (no zip, no stickiness, no multi-term batches).

pub mod cli;
pub mod district;
mod enrollments;
mod errors;
mod faults;
mod files;
mod ids;
mod jobs;
mod json;
mod model;
mod multipart;
pub mod openedx;
mod pagination;
mod params;
mod recorder;
mod render;
mod reply;
mod report;
mod roles;
mod routes;
mod seed;
mod server;
mod sis_import;
mod store;
mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use errors::{ApiError, NOT_FOUND_MESSAGE, StoreError};
pub use faults::{FaultAction, FaultOptions, FaultRule, FaultsFileError};
pub use ids::IdRef;
pub use model::{
    Account, Course, CourseState, Enrollment, EnrollmentState, EnrollmentType, ObserverLink, Role,
    RoleState, Section, User,
};
pub use recorder::RequestRecord;
pub use seed::{
    Seed, SeedAccount, SeedCourse, SeedEnrollment, SeedError, SeedRole, SeedSection, SeedUser,
};
pub use store::{ROOT_ACCOUNT_ID, Store};
pub use throttle::{ThrottleOptions, ThrottleStatus};

use server::{App, lock};

/// The token a default simulator accepts.
pub const DEFAULT_TOKEN: &str = "sim-token";

/// Everything a simulator starts with.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The one admin token accepted (CONTRACT.md "Binaries").
    pub token: String,
    pub throttle: ThrottleOptions,
    pub faults: FaultOptions,
    pub seed: Seed,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            token: DEFAULT_TOKEN.to_string(),
            throttle: ThrottleOptions::default(),
            faults: FaultOptions::default(),
            seed: Seed::default(),
        }
    }
}

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Seed(#[from] SeedError),
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

/// A running simulator.
pub struct SimHandle {
    app: Arc<App>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Starts a simulator on `127.0.0.1:0` in a tokio task.
pub async fn spawn(opts: SimOptions) -> std::io::Result<SimHandle> {
    Ok(spawn_at(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await?)
}

/// Starts a simulator on the given address.
pub async fn spawn_at(listen: SocketAddr, opts: SimOptions) -> Result<SimHandle, SpawnError> {
    let store = Store::from_seed(&opts.seed)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SpawnError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SpawnError::Bind {
        addr: listen,
        source,
    })?;
    let app = Arc::new(App {
        store: Mutex::new(store),
        token: Mutex::new(opts.token),
        throttle_options: opts.throttle,
        throttle: Mutex::new(Default::default()),
        faults: Mutex::new(faults::FaultState::new(opts.faults)),
        recorder: Arc::default(),
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
            tracing::error!(%error, "canvas-sim stopped serving");
        }
    });
    Ok(SimHandle {
        app,
        addr,
        shutdown: Some(shutdown_tx),
        task,
    })
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash, no `/api/v1`).
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

    /// How many finished requests had this method and route template.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.app.recorder.count(method, route)
    }

    pub fn reset_requests(&self) {
        self.app.recorder.reset();
    }

    /// Direct access to the simulated Canvas (arrange or inspect state in tests).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(&self.app.store))
    }

    /// Replaces the fault options; rule counters and the RNG start over.
    pub fn set_faults(&self, faults: FaultOptions) {
        *lock(&self.app.faults) = faults::FaultState::new(faults);
    }

    /// Token rotation: only the new token is accepted afterwards.
    pub fn set_token(&self, token: &str) {
        *lock(&self.app.token) = token.to_string();
    }

    /// Stops serving: waits briefly for in-flight requests, then aborts (hung requests included).
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

impl Drop for SimHandle {
    fn drop(&mut self) {
        // A handle dropped without `shutdown` must not leave a server running in the test runtime.
        if self.shutdown.is_some() {
            self.task.abort();
        }
    }
}
