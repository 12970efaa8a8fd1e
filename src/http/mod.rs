//! The V2 HTTP surface: `router(state)` builds every route; handlers live
//! in `handlers` (health, metadata, config, statistics) and `infer`.
//! No socket here: tests drive the router with `oneshot`.

mod error;
mod handlers;
mod infer;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;
use error::ErrorNote;

use prometheus::IntGauge;

use crate::metrics::{Metrics, ModelMetrics};
use crate::model::LoadedModel;
use crate::protocol::Limits;
use crate::stats::ModelStats;
use crate::worker::Pool;

/// serve's `--inline-max-us` default.
pub const DEFAULT_INLINE_MAX: Duration = Duration::from_micros(100);

/// Bodies above this always go to a worker, whatever the estimate.
const INLINE_MAX_BODY: usize = 64 << 10;

/// One served model version with its counters.
#[derive(Debug)]
pub struct ServedModel {
    pub model: LoadedModel,
    pub stats: ModelStats,
    pub metrics: ModelMetrics,
    pub(crate) cost: RecentCost,
}

/// The last successful request's body length and worker-side time
/// (decode, inference, encode): what the inline decision scales from.
#[derive(Debug)]
pub(crate) struct RecentCost {
    body: AtomicU64,
    nanos: AtomicU64,
}

impl Default for RecentCost {
    fn default() -> Self {
        // Unknown until a request has run: the first ones go to a worker.
        RecentCost { body: AtomicU64::new(1), nanos: AtomicU64::new(u64::MAX) }
    }
}

impl RecentCost {
    /// Records a successful request's body length and worker-side time.
    pub(crate) fn record(&self, body: usize, took: Duration) {
        self.body.store((body as u64).max(1), Ordering::Relaxed);
        self.nanos.store(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Expected worker-side time of a request of `body` bytes: the last
    /// one's, scaled up by body length (decode and rows grow with it).
    fn expected(&self, body: usize) -> Duration {
        let last_body = u128::from(self.body.load(Ordering::Relaxed));
        let nanos = u128::from(self.nanos.load(Ordering::Relaxed));
        let scaled = if body as u128 > last_body { nanos * body as u128 / last_body } else { nanos };
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// Liveness and readiness.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    draining: AtomicBool,
    compromised: AtomicBool,
    /// Keep liveness after a violation (`--live-after-violation`).
    pub live_after_violation: bool,
}

impl Health {
    pub fn new(live_after_violation: bool) -> Health {
        Health { live_after_violation, ..Health::default() }
    }
    /// Ready: models loaded and the lockdown in force.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
    /// Shutting down: readiness turns false at once so load balancers drain.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
    /// A blocked system call was seen.
    pub fn set_compromised(&self) {
        self.compromised.store(true, Ordering::SeqCst);
    }
    pub fn is_live(&self) -> bool {
        self.live_after_violation || !self.compromised.load(Ordering::SeqCst)
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst) && !self.compromised.load(Ordering::SeqCst)
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// name → version → model.
    pub models: BTreeMap<String, BTreeMap<u64, Arc<ServedModel>>>,
    pub pool: Pool,
    pub metrics: Metrics,
    pub limits: Limits,
    pub max_body: usize,
    pub request_timeout: Duration,
    pub health: Health,
    /// Requests expected to take at most this long run on the connection's
    /// own thread when nothing else is in flight (zero: never).
    pub inline_max: Duration,
}

impl AppState {
    /// Registers loaded models with their statistics and metrics.
    pub fn new(
        models: Vec<LoadedModel>,
        pool: Pool,
        metrics: Metrics,
        limits: Limits,
        max_body: usize,
        request_timeout: Duration,
        health: Health,
    ) -> AppState {
        let mut map: BTreeMap<String, BTreeMap<u64, Arc<ServedModel>>> = BTreeMap::new();
        for m in models {
            let metrics_handle = metrics.model(&m.meta.name, m.meta.version);
            map.entry(m.meta.name.clone()).or_default().insert(
                m.meta.version,
                Arc::new(ServedModel { model: m, stats: ModelStats::default(), metrics: metrics_handle, cost: RecentCost::default() }),
            );
        }
        AppState { models: map, pool, metrics, limits, max_body, request_timeout, health, inline_max: DEFAULT_INLINE_MAX }
    }

    /// Sets `inline_max` (`--inline-max-us`).
    pub fn with_inline_max(mut self, max: Duration) -> AppState {
        self.inline_max = max;
        self
    }

    /// Whether a request of `body` bytes for `served` runs on the calling
    /// (connection) thread: it is the only request in flight on the only
    /// open connection and no job waits, the body is small, and the model's
    /// recent requests say it will be done within `inline_max`. With one
    /// client in a request/answer loop, the hand-off to a worker and the
    /// reply back are two thread wake-ups, each dearer than a small model's
    /// whole inference. With more connections every request goes through
    /// the workers as before: the connection threads stay free for the
    /// others, the work spreads over the CPUs and the queue bounds the load.
    pub(crate) fn runs_inline(&self, served: &ServedModel, body: usize) -> bool {
        !self.inline_max.is_zero()
            && body <= INLINE_MAX_BODY
            && self.metrics.open_connections.get() <= 1
            // With HTTP/1 one connection carries one request at a time, so
            // this decides only without a server (the router driven
            // directly, as benches do), or if a protocol with concurrent
            // streams is ever served.
            && self.metrics.inflight.get() <= 1
            && self.pool.queued() == 0
            && served.cost.expected(body) <= self.inline_max
    }

    /// A model by name and optional version (default: the highest).
    pub fn lookup(&self, name: &str, version: Option<&str>) -> Result<&Arc<ServedModel>, ApiError> {
        let versions = self.models.get(name).ok_or_else(|| ApiError::not_found(format!("unknown model '{name}'")))?;
        match version {
            None | Some("") => versions.values().next_back().ok_or_else(|| ApiError::not_found(format!("unknown model '{name}'"))),
            Some(v) => {
                let n: u64 = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid version '{v}' for model '{name}': versions are positive integers"))
                })?;
                versions.get(&n).ok_or_else(|| ApiError::not_found(format!("unknown version '{v}' of model '{name}'")))
            }
        }
    }
}

/// The inference router.
pub fn router(state: Arc<AppState>) -> Router {
    let model_routes =
        |suffix: &str| [format!("/v2/models/{{model}}{suffix}"), format!("/v2/models/{{model}}/versions/{{version}}{suffix}")];
    let mut r = Router::new()
        .route("/v2/health/live", get(handlers::live))
        .route("/v2/health/ready", get(handlers::ready))
        .route("/v2", get(handlers::server_metadata))
        .route("/v2/models/stats", get(handlers::all_stats));
    for p in model_routes("") {
        r = r.route(&p, get(handlers::model_metadata));
    }
    for p in model_routes("/ready") {
        r = r.route(&p, get(handlers::model_ready));
    }
    for p in model_routes("/config") {
        r = r.route(&p, get(handlers::model_config));
    }
    for p in model_routes("/stats") {
        r = r.route(&p, get(handlers::model_stats));
    }
    for p in model_routes("/infer") {
        r = r.route(&p, post(infer::infer));
    }
    r.fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Route templates of inference, as the router names them in metrics and logs.
const INFER_ROUTE: &str = "/v2/models/{model}/infer";
const INFER_VERSION_ROUTE: &str = "/v2/models/{model}/versions/{version}/infer";

/// The inference listener's service: `router(state)`, except that an
/// inference request whose path names its model (and version) in plain
/// segments goes straight to the handler, observed as the router would,
/// without the routing table, the middleware stack and the extractors
/// (about a tenth of a small request's instructions). Everything else,
/// including an inference path with percent-escapes, goes to the router,
/// which answers it the same way.
#[derive(Clone, Debug)]
pub struct Service {
    router: Router,
    state: Arc<AppState>,
}

/// The inference listener's service (see [`Service`]).
pub fn service(state: Arc<AppState>) -> Service {
    Service { router: router(state.clone()), state }
}

/// The route template, model and version of a `POST` to an inference path
/// whose segments need no decoding; `None` leaves the path to the router.
fn direct_infer(path: &str) -> Option<(&'static str, &str, Option<&str>)> {
    let rest = path.strip_prefix("/v2/models/")?.strip_suffix("/infer")?;
    let plain = |s: &str| !s.is_empty() && !s.contains('%');
    // Split on a char: a `str` pattern sets up a substring search, dearer
    // than this whole function on paths this short.
    let mut segments = rest.split('/');
    match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some(model), None, _, _) if plain(model) => Some((INFER_ROUTE, model, None)),
        (Some(model), Some("versions"), Some(version), None) if plain(model) && plain(version) => {
            Some((INFER_VERSION_ROUTE, model, Some(version)))
        }
        _ => None,
    }
}

impl<B> tower_service::Service<axum::http::Request<B>> for Service
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let req = req.map(axum::body::Body::new);
        if req.method() == Method::POST
            && let Some((route, model, version)) = direct_infer(req.uri().path())
        {
            let (route, model, version) = (route, model.to_owned(), version.map(str::to_owned));
            let state = self.state.clone();
            return Box::pin(async move {
                let mut resp = observed(&state, route, req, |req| infer::infer_model(&state, &model, version.as_deref(), req)).await;
                // As the router's route future does (hyper would add it on the wire anyway).
                if !resp.headers().contains_key(header::CONTENT_LENGTH)
                    && let Some(n) = resp.body().size_hint().exact()
                {
                    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                }
                Ok(resp)
            });
        }
        Box::pin(tower_service::Service::call(&mut self.router, req))
    }
}

/// Raises a gauge for as long as it lives: a request's future dropped
/// part-way (hyper drops it when the client resets the connection) must not
/// leave `inflight` or `pending` raised, which would also end inline runs.
pub(crate) struct Raised<'a>(&'a IntGauge);

impl<'a> Raised<'a> {
    pub(crate) fn new(gauge: &'a IntGauge) -> Raised<'a> {
        gauge.inc();
        Raised(gauge)
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A constant: looking a header up by a string parses the name on every request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);
/// The process id, read once: `getpid` is a system call, and was one per request.
static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// A request id from the client when it is short printable ASCII, else a new one.
fn request_id(req: &Request) -> HeaderValue {
    if let Some(v) = req.headers().get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= 128
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return v.clone();
    }
    let n = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    // "{pid:08x}-{n:x}", written without the formatting machinery.
    let mut buf = [0u8; 8 + 1 + 16];
    let mut len = hex(u64::from(*PID.get_or_init(std::process::id)), 8, &mut buf);
    buf[len] = b'-';
    len += 1;
    len += hex(n, 1, &mut buf[len..]);
    HeaderValue::from_bytes(&buf[..len]).expect("hex is a valid header value")
}

/// Writes `v` in lower-case hex, at least `min_digits` wide, to the start of `out`; returns the length.
fn hex(v: u64, min_digits: usize, out: &mut [u8]) -> usize {
    let digits = ((64 - v.leading_zeros() as usize).div_ceil(4)).max(min_digits);
    for (i, b) in out[..digits].iter_mut().enumerate() {
        let nibble = (v >> (4 * (digits - 1 - i))) & 0xf;
        *b = b"0123456789abcdef"[nibble as usize];
    }
    digits
}

/// Request id, metrics by route template, and one log event per request.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    observed(&state, route, req, |req| next.run(req)).await
}

/// What `observe` does around `run` (the rest of the stack, or the
/// inference handler itself on `service`'s direct route).
async fn observed<F, Fut>(state: &AppState, route: &str, req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let method_label = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    };
    let id = request_id(&req);
    // Only names of served models are logged, never arbitrary path text:
    // the name is the registry's own copy.
    let model = req
        .uri()
        .path()
        .strip_prefix("/v2/models/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|m| state.models.get_key_value(m))
        .map_or("", |(name, _)| name.as_str());
    let inflight = Raised::new(&state.metrics.inflight);
    // The inference handler answers 408/503 at its own deadline; this one,
    // a little later, bounds every route whatever it awaits.
    let mut resp = match tokio::time::timeout(state.request_timeout + Duration::from_secs(1), run(req)).await {
        Ok(r) => r,
        Err(_) => {
            state.metrics.limit_rejections.with_label_values(&["request_timeout"]).inc();
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "request timed out").into_response()
        }
    };
    drop(inflight);
    let status = resp.status();
    state.metrics.http_requests.with_label_values(&[route, method_label, status.as_str()]).inc();
    let latency_us = started.elapsed().as_micros() as u64;
    let rid = id.to_str().unwrap_or("");
    if status.is_client_error() || status.is_server_error() {
        let error = resp.extensions().get::<ErrorNote>().map(|n| n.0.as_str()).unwrap_or("");
        tracing::warn!(request_id = rid, route = %route, model, method = method_label, status = status.as_u16(), latency_us, error, "request failed");
    } else {
        tracing::debug!(request_id = rid, route = %route, model, method = method_label, status = status.as_u16(), latency_us, "request");
    }
    resp.headers_mut().insert(X_REQUEST_ID, id);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_inference_paths_take_the_direct_route() {
        assert_eq!(direct_infer("/v2/models/iris/infer"), Some((INFER_ROUTE, "iris", None)));
        assert_eq!(direct_infer("/v2/models/iris/versions/1/infer"), Some((INFER_VERSION_ROUTE, "iris", Some("1"))));
        assert_eq!(direct_infer("/v2/models/versions/infer"), Some((INFER_ROUTE, "versions", None)));
        for path in [
            "/v2/models/ir%69s/infer",
            "/v2/models//infer",
            "/v2/models/iris/versions//infer",
            "/v2/models/a/b/infer",
            "/v2/models/iris/versions/1/versions/2/infer",
            "/v2/models/iris/version/1/infer",
            "/v2/models/iris/versions/1/2/infer",
            "/v2/models/iris/infer/",
            "/v2/models/iris",
            "/v2/models/infer",
            "/v2/iris/infer",
        ] {
            assert_eq!(direct_infer(path), None, "{path}");
        }
    }

    /// The bundled iris model behind a one-worker pool.
    fn iris_state() -> Arc<AppState> {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let src = crate::model::scan(&repo).unwrap().into_iter().find(|s| s.name == "iris").unwrap();
        let v = src.versions.last().unwrap();
        let opts = crate::model::engine::LoadOptions::default();
        let model = LoadedModel::load(&src.name, v.version, &v.path, src.config.as_ref(), &src.config_path, &opts).unwrap();
        let health = Health::new(false);
        health.set_ready();
        let pool = Pool::start(1, 8).unwrap();
        Arc::new(AppState::new(vec![model], pool, Metrics::new(), Limits::default(), 1 << 20, Duration::from_secs(5), health))
    }

    /// A request dropped before it is answered (a client gone) lowers the
    /// in-flight gauge again.
    #[test]
    fn a_dropped_request_leaves_nothing_in_flight() {
        let state = iris_state();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let req = Request::new(axum::body::Body::empty());
            let mut fut = Box::pin(observed(&state, "r", req, |_| std::future::pending::<Response>()));
            assert!(tokio::time::timeout(Duration::from_millis(20), &mut fut).await.is_err());
            assert_eq!(state.metrics.inflight.get(), 1);
            drop(fut);
            assert_eq!(state.metrics.inflight.get(), 0);
        });
    }

    /// The direct route answers exactly as the router does, and counts
    /// under the same route template.
    #[test]
    fn the_service_answers_as_the_router_does() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        let (a, b) = (iris_state(), iris_state());
        let (router, service) = (router(a.clone()), service(b.clone()));
        let good = r#"{"id":"x","inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
        let cases = [
            ("POST", "/v2/models/iris/infer", good),
            ("POST", "/v2/models/iris/versions/1/infer", good),
            ("POST", "/v2/models/ir%69s/infer", good),
            ("POST", "/v2/models/iris/versions/7/infer", good),
            ("POST", "/v2/models/iris/versions/x/infer", good),
            ("POST", "/v2/models/nope/infer", good),
            ("POST", "/v2/models/iris/infer", r#"{"inputs": ["#),
            ("POST", "/v2/models/iris/infer?x=1", good),
            ("POST", "/v2/models/iris/infer/", good),
            ("POST", "/v2/models/stats/infer", good),
            ("HEAD", "/v2/models/iris/infer", ""),
            ("GET", "/v2/models/iris/infer", ""),
            ("GET", "/v2/models/iris", ""),
        ];
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let answer = |resp: Response| {
            let (mut parts, body) = resp.into_parts();
            let body = rt.block_on(body.collect()).unwrap().to_bytes();
            assert!(parts.headers.remove("x-request-id").is_some());
            (parts.status, parts.headers, body)
        };
        for (method, path, body) in cases {
            let req = || axum::http::Request::builder().method(method).uri(path).body(axum::body::Body::from(body)).unwrap();
            let via_router = answer(rt.block_on(router.clone().oneshot(req())).unwrap());
            let via_service = answer(rt.block_on(service.clone().oneshot(req())).unwrap());
            assert_eq!(via_router, via_service, "{method} {path}");
        }
        let counts = |s: &AppState| {
            let text = s.metrics.render();
            text.lines().filter(|l| l.starts_with("warden_http_requests_total{")).map(str::to_owned).collect::<Vec<_>>()
        };
        assert!(!counts(&a).is_empty());
        assert_eq!(counts(&a), counts(&b));
    }

    #[test]
    fn hex_pads_to_the_minimum_and_grows_past_it() {
        let mut buf = [0u8; 16];
        for (v, min, want) in
            [(0u64, 1, "0"), (0, 8, "00000000"), (0xabc, 8, "00000abc"), (u64::MAX, 1, "ffffffffffffffff"), (0x1f, 1, "1f")]
        {
            let n = hex(v, min, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
            assert_eq!(format!("{v:0min$x}"), want);
        }
    }

    #[test]
    fn generated_request_ids_are_the_pid_and_a_sequence_number() {
        let req = Request::new(axum::body::Body::empty());
        let (a, b) = (request_id(&req), request_id(&req));
        let pid = format!("{:08x}-", std::process::id());
        for id in [&a, &b] {
            let s = id.to_str().unwrap();
            assert!(s.starts_with(&pid) && s.len() > pid.len(), "{s}");
            assert!(u64::from_str_radix(&s[pid.len()..], 16).is_ok(), "{s}");
        }
        assert_ne!(a, b);
    }

    #[test]
    fn an_unmeasured_model_is_expected_to_be_slow() {
        assert_eq!(RecentCost::default().expected(10), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn the_expected_cost_grows_with_the_body_and_never_shrinks_below_the_last() {
        let c = RecentCost::default();
        c.record(1000, Duration::from_micros(10));
        assert_eq!(c.expected(1000), Duration::from_micros(10));
        assert_eq!(c.expected(10), Duration::from_micros(10));
        assert_eq!(c.expected(4000), Duration::from_micros(40));
        c.record(0, Duration::MAX);
        assert_eq!(c.expected(1 << 30), Duration::from_nanos(u64::MAX));
    }
}
