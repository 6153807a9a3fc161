//! Prometheus metrics: requests by route, method and status, their latency, and what the authorization
//! server did (tokens issued by grant type, token-endpoint errors by code, grants revoked by reason).
//! Labels come from fixed sets, so a client cannot grow the number of series.
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The counters of one application (each test's app has its own registry). Cheap to clone: every clone
/// counts into the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    tokens_issued: IntCounterVec,
    token_errors: IntCounterVec,
    grants_revoked: IntCounterVec,
    upstream_calls: IntCounterVec,
    upstream_latency: HistogramVec,
    upstream_restarts: IntGaugeVec,
    upstream_up: IntGaugeVec,
}

/// The routes metrics are kept for; anything else counts as `other`.
const ROUTES: &[&str] = &[
    "/mcp",
    "/oauth/authorize",
    "/oauth/token",
    "/oauth/register",
    "/oauth/revoke",
    "/oauth/introspect",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
    "/login",
    "/signup",
    "/logout",
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/authorize",
    "/token",
    "/register",
];

pub fn route_label(path: &str) -> &'static str {
    if path.starts_with("/docs") {
        return "/docs";
    }
    ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other")
}

impl Metrics {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("mcp_gateway_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("mcp_gateway_http_request_duration_seconds", "HTTP request latency by route and method")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route", "method"],
        )
        .expect("valid metric");
        let tokens_issued = IntCounterVec::new(
            Opts::new("mcp_gateway_tokens_issued_total", "Access tokens issued by grant type"),
            &["grant_type"],
        )
        .expect("valid metric");
        let token_errors = IntCounterVec::new(
            Opts::new("mcp_gateway_token_errors_total", "Token endpoint errors by code"),
            &["error"],
        )
        .expect("valid metric");
        let grants_revoked =
            IntCounterVec::new(Opts::new("mcp_gateway_grants_revoked_total", "Grants revoked by reason"), &["reason"])
                .expect("valid metric");
        let upstream_calls = IntCounterVec::new(
            Opts::new("mcp_gateway_upstream_calls_total", "Calls passed to an upstream, by upstream and outcome"),
            &["upstream", "outcome"],
        )
        .expect("valid metric");
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new("mcp_gateway_upstream_call_duration_seconds", "Upstream call latency by upstream")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0]),
            &["upstream"],
        )
        .expect("valid metric");
        let upstream_restarts = IntGaugeVec::new(
            Opts::new("mcp_gateway_upstream_restarts", "Times an upstream connection was restarted on this instance"),
            &["upstream"],
        )
        .expect("valid metric");
        let upstream_up =
            IntGaugeVec::new(Opts::new("mcp_gateway_upstream_up", "1 while an upstream is connected"), &["upstream"])
                .expect("valid metric");
        for metric in [&requests, &tokens_issued, &token_errors, &grants_revoked, &upstream_calls] {
            registry.register(Box::new(metric.clone())).expect("metric registered once");
        }
        for metric in [&latency, &upstream_latency] {
            registry.register(Box::new(metric.clone())).expect("metric registered once");
        }
        for metric in [&upstream_restarts, &upstream_up] {
            registry.register(Box::new(metric.clone())).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            tokens_issued,
            token_errors,
            grants_revoked,
            upstream_calls,
            upstream_latency,
            upstream_restarts,
            upstream_up,
        }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = ["GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"]
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.latency.with_label_values(&[route, method]).observe(seconds);
    }

    pub fn token_issued(&self, grant_type: &'static str) {
        self.tokens_issued.with_label_values(&[grant_type]).inc();
    }

    pub fn token_error(&self, error: &'static str) {
        self.token_errors.with_label_values(&[error]).inc();
    }

    pub fn grant_revoked(&self, reason: &'static str) {
        self.grants_revoked.with_label_values(&[reason]).inc();
    }

    /// One call passed to `upstream`: `outcome` is ok, tool_error, input_required, error, timeout or cancelled.
    pub fn upstream_call(&self, upstream: &str, outcome: &'static str, seconds: f64) {
        self.upstream_calls.with_label_values(&[upstream, outcome]).inc();
        self.upstream_latency.with_label_values(&[upstream]).observe(seconds);
    }

    /// Where an upstream's connection stands on this instance.
    pub fn upstream_state(&self, upstream: &str, up: bool, restarts: u64) {
        self.upstream_up.with_label_values(&[upstream]).set(i64::from(up));
        self.upstream_restarts.with_label_values(&[upstream]).set(i64::try_from(restarts).unwrap_or(i64::MAX));
    }

    /// Forgets a removed upstream's series.
    pub fn upstream_removed(&self, upstream: &str) {
        let _ = self.upstream_up.remove_label_values(&[upstream]);
        let _ = self.upstream_restarts.remove_label_values(&[upstream]);
        let _ = self.upstream_latency.remove_label_values(&[upstream]);
        for outcome in ["ok", "tool_error", "input_required", "error", "timeout", "cancelled"] {
            let _ = self.upstream_calls.remove_label_values(&[upstream, outcome]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encoding metrics into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
