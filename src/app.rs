//! Wiring: from validated [`Settings`] to the connected parts a command needs (both databases, the Canvas client,
//! metrics) as a [`CycleContext`].

use std::sync::Arc;

use crate::canvas::{CanvasClient, CanvasError, ClientOptions};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::openedx::{OpenEdxClient, OpenEdxClientOptions, OpenEdxError};
use crate::reconcile::CycleContext;
use crate::store::{self, DbError};
use crate::target::Target;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("Canvas client: {0}")]
    Canvas(#[from] CanvasError),
    #[error("Open edX client: {0}")]
    OpenEdx(#[from] OpenEdxError),
}

/// Connects both databases (the SIS one only when `sis.url` differs), applies migrations and builds the client.
pub async fn connect(
    settings: Settings,
    metrics: Arc<Metrics>,
) -> Result<CycleContext, StartError> {
    // Every audit row and run record says which target it is of (`target` column, filled from this session
    // setting by the column default).
    let target_kind = settings.target.as_str();
    let db = store::connect_with(
        "rostersync",
        &settings.database.url,
        settings.database.max_connections,
        |o| o.options([("rostersync.target", target_kind)]),
    )
    .await?;
    store::migrate(&db).await?;
    let sis = match &settings.sis.url {
        Some(url) if url.expose() != settings.database.url.expose() => {
            store::connect("SIS", url, 4).await?
        }
        _ => db.clone(),
    };
    let target = match &settings.openedx {
        Some(openedx) => Target::OpenEdx(Arc::new(
            OpenEdxClient::new(OpenEdxClientOptions::new(openedx, &settings.limits))?
                .with_metrics(metrics.clone()),
        )),
        None => Target::Canvas(Arc::new(CanvasClient::new(
            ClientOptions::new(
                &settings.canvas,
                &settings.limits,
                settings.sis.user_id_kind,
            ),
            metrics.clone(),
        )?)),
    };
    Ok(CycleContext {
        settings: Arc::new(settings),
        target,
        db,
        sis,
        metrics,
    })
}
