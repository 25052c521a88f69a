//! The HTTP endpoints (CONTRACT.md): `/metrics` (OpenMetrics; the classic text format on `Accept: text/plain`), `/healthz` (the process runs), `/readyz` (both
//! databases answer and this replica can run cycles: Canvas accepted its token, by the token check on a standby or
//! the last cycle on the leader; see `health.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::Health;
use crate::metrics::{Format, Metrics};

#[derive(Clone)]
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub db: PgPool,
    pub sis: PgPool,
    pub health: Arc<Health>,
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: CancellationToken,
) {
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// OpenMetrics, or the classic text format when the scraper's `Accept` prefers `text/plain`.
async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        state.metrics.encode_as(format),
    )
}

async fn ping(pool: &PgPool) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(pool)
        )
        .await,
        Ok(Ok(_))
    )
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if !ping(&state.db).await {
        problems.push("rostersync database unreachable".to_owned());
    }
    if !ping(&state.sis).await {
        problems.push("SIS database unreachable".to_owned());
    }
    if let Some(canvas) = state.health.canvas_problem() {
        problems.push(canvas);
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}
