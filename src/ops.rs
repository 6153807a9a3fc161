//! Operations endpoints: liveness and readiness, for load balancers and orchestrators.
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use subtle::ConstantTimeEq;

use crate::domain::tokens::BearerToken;
use crate::domain::upstreams::Upstreams;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the operations endpoints read: the database (readiness) and the metrics.
#[derive(Clone)]
pub struct Ops {
    pub store: Store,
    pub metrics: Metrics,
    /// When set, `/metrics` answers only to `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    pub upstreams: Upstreams,
}

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
    /// The gateway's upstreams as this instance sees them (readiness only; an upstream that is down does
    /// not make the instance unready, since everything else still works).
    #[oai(default, skip_serializing_if_is_empty)]
    pub upstreams: Vec<UpstreamHealth>,
}

/// One upstream's state, for load balancers and probes. Its last error is not here: /readyz answers
/// anyone, and an error may quote a program's stderr or an address; `upstream list` and the admin page
/// show it.
#[derive(Debug, Object)]
pub struct UpstreamHealth {
    pub name: String,
    /// `connected`, `starting`, `failed` or `disabled`.
    pub state: String,
    /// How many tools clients see from it.
    pub tools: usize,
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

#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Prometheus text exposition format.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Ok(PlainText<String>),
    /// `METRICS_TOKEN` is set and the request did not present it as a bearer token.
    #[oai(status = 401)]
    Unauthorized(PlainText<String>),
}

pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness: the process is up and serving HTTP. Touches nothing else.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into(), reason: None, upstreams: vec![] })
    }

    /// Prometheus metrics: requests by route, method and status, latency, tokens issued, token errors and
    /// grants revoked. With `METRICS_TOKEN` set, the scraper must send `Authorization: Bearer <token>`.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, ops: Data<&Arc<Ops>>, BearerToken(presented): BearerToken) -> MetricsResponse {
        if let Some(expected) = &ops.metrics_token
            && !presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
        {
            return MetricsResponse::Unauthorized(PlainText("a bearer token is required".into()));
        }
        MetricsResponse::Ok(PlainText(ops.metrics.render()))
    }

    /// Readiness: the database is reachable and every migration is applied.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self, ops: Data<&Arc<Ops>>) -> Readiness {
        let unavailable = |reason: String| {
            Readiness::Unavailable(Json(Health {
                status: "unavailable".into(),
                reason: Some(reason),
                upstreams: vec![],
            }))
        };
        let upstreams = ops
            .upstreams
            .local_reports()
            .into_iter()
            .map(|r| UpstreamHealth { name: r.upstream, state: r.state, tools: r.tools.len() })
            .collect();
        match ops.store.pending_migrations().await {
            Ok(0) => Readiness::Ready(Json(Health { status: "ready".into(), reason: None, upstreams })),
            Ok(n) => unavailable(format!("{n} migrations are pending")),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                unavailable("the database is unreachable".into())
            }
        }
    }
}
