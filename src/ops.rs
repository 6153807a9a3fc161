//! Operations endpoints: liveness and readiness, for load balancers and orchestrators.
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::state::State;

#[derive(Tags)]
enum ApiTags {
    /// Health of this instance.
    Operations,
}

#[derive(Debug, Object)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// What is wrong, when not ready.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
}

#[derive(ApiResponse)]
pub enum Readiness {
    /// The database answers and its schema is current.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The database is unreachable or migrations are pending.
    #[oai(status = 503)]
    Unavailable(Json<Health>),
}

pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness: the process is up and serving HTTP. Touches nothing else.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into(), reason: None })
    }

    /// Readiness: the database is reachable and every migration is applied.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self, state: Data<&State>) -> Readiness {
        let unavailable = |reason: String| {
            Readiness::Unavailable(Json(Health { status: "unavailable".into(), reason: Some(reason) }))
        };
        match state.store.pending_migrations().await {
            Ok(0) => Readiness::Ready(Json(Health { status: "ready".into(), reason: None })),
            Ok(n) => unavailable(format!("{n} migrations are pending")),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                unavailable("the database is unreachable".into())
            }
        }
    }
}
