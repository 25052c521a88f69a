//! Wiring: from validated [`Settings`] to the connected parts a command needs (both databases, the Canvas client,
//! metrics) as a [`CycleContext`].

use std::sync::Arc;

use crate::canvas::{CanvasClient, CanvasError, ClientOptions};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::reconcile::CycleContext;
use crate::store::{self, DbError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("Canvas client: {0}")]
    Canvas(#[from] CanvasError),
}

/// Connects both databases (the SIS one only when `sis.url` differs), applies migrations and builds the client.
pub async fn connect(
    settings: Settings,
    metrics: Arc<Metrics>,
) -> Result<CycleContext, StartError> {
    let db = store::connect(
        "rostersync",
        &settings.database.url,
        settings.database.max_connections,
    )
    .await?;
    store::migrate(&db).await?;
    let sis = match &settings.sis.url {
        Some(url) if url.expose() != settings.database.url.expose() => {
            store::connect("SIS", url, 4).await?
        }
        _ => db.clone(),
    };
    let canvas = CanvasClient::new(
        ClientOptions::new(
            &settings.canvas,
            &settings.limits,
            settings.sis.user_id_kind,
        ),
        metrics.clone(),
    )?;
    Ok(CycleContext {
        settings: Arc::new(settings),
        canvas: Arc::new(canvas),
        db,
        sis,
        metrics,
    })
}
