//! `POST /v2/models/{m}[/versions/{v}]/infer`.
//!
//! The reactor only reads the body (bounded while streaming); decoding,
//! inference and encoding run on a worker thread behind the bounded queue,
//! except a small request on an otherwise idle server, which runs on the
//! connection's thread (`AppState::runs_inline`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prometheus::IntCounterVec;

use super::handlers::ModelPath;
use super::{ApiError, AppState, ServedModel};
use crate::model::{EngineError, Scratch};
use crate::protocol::{DecodeError, Limits, RawInput, decode_request, encode_response};
use crate::stats::Timings;

/// A `HeaderName` constant rather than a `&str`: looking a header up by
/// string parses and lower-cases the name on every request.
const HEADER_LEN: HeaderName = HeaderName::from_static("inference-header-content-length");

struct Answer {
    body: Bytes,
    header_len: Option<usize>,
    batch: usize,
    timings: Timings,
}

pub async fn infer(State(st): State<Arc<AppState>>, Path(p): Path<ModelPath>, req: Request) -> Response {
    infer_model(&st, &p.model, p.version.as_deref(), req).await
}

/// The inference of `model` (`version`: the highest when `None`); the
/// router's handler and `http::service`'s direct route both end here.
pub(super) async fn infer_model(st: &AppState, model: &str, version: Option<&str>, req: Request) -> Response {
    let started = Instant::now();
    // The whole request rather than a `HeaderMap` extractor, which clones the headers.
    let (parts, body) = req.into_parts();
    let served = match st.lookup(model, version) {
        Ok(s) => s.clone(),
        Err(e) => return e.into_response(),
    };
    match handle(st, &served, &parts.headers, body, started).await {
        Ok(answer) => {
            let total = started.elapsed();
            served.stats.success(answer.batch, total, &answer.timings);
            served.metrics.success(answer.batch, total, &answer.timings);
            let mut r = (StatusCode::OK, answer.body).into_response();
            let h = r.headers_mut();
            match answer.header_len {
                Some(n) => {
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                    h.insert(HEADER_LEN, HeaderValue::from(n));
                }
                None => {
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
            r
        }
        Err((reason, e)) => {
            let total = started.elapsed();
            served.stats.failure(total);
            served.metrics.failure(reason, total);
            e.into_response()
        }
    }
}

type Failure = (&'static str, ApiError);

fn rejected(e: ApiError) -> Failure {
    ("REJECTED", e)
}

async fn handle(st: &AppState, served: &Arc<ServedModel>, headers: &HeaderMap, body: Body, started: Instant) -> Result<Answer, Failure> {
    let header_len = match headers.get(&HEADER_LEN) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| rejected(ApiError::bad_request("Inference-Header-Content-Length must be a non-negative integer")))?,
        ),
    };
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<u64>().ok())
        && len > st.max_body as u64
    {
        st.metrics.limit_rejections.with_label_values(&["body_size"]).inc();
        return Err(rejected(too_large(st.max_body)));
    }
    let deadline = started + st.request_timeout;
    let body = match tokio::time::timeout_at(deadline.into(), Limited::new(body, st.max_body).collect()).await {
        Err(_) => {
            st.metrics.limit_rejections.with_label_values(&["request_timeout"]).inc();
            return Err(rejected(ApiError::new(StatusCode::REQUEST_TIMEOUT, "timed out reading the request body")));
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            st.metrics.limit_rejections.with_label_values(&["body_size"]).inc();
            return Err(rejected(too_large(st.max_body)));
        }
        Ok(Err(_)) => return Err(rejected(ApiError::bad_request("failed to read the request body"))),
        Ok(Ok(c)) => c.to_bytes(),
    };

    let body_len = body.len();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let job_model = served.clone();
    let limits = st.limits;
    let limit_counter = st.metrics.limit_rejections.clone();
    let enqueued = Instant::now();
    let job = Box::new(move |scratch: &mut Scratch| {
        let queue = enqueued.elapsed();
        let result = run(&job_model, scratch, body, header_len, &limits, &limit_counter).map(|mut a| {
            a.timings.queue = queue;
            a
        });
        let _ = tx.send(result);
    });
    let pending = super::Raised::new(&served.metrics.pending);
    // None: the deadline passed; Some(None): the job ended without an answer (it panicked).
    let received = if st.runs_inline(served, body_len) {
        st.metrics.inline_runs.inc();
        st.pool.run_here(job);
        // The job has run to its end: its answer, if any, is already there; no timer needed.
        Some(rx.try_recv().ok())
    } else if st.pool.try_submit(job).is_err() {
        drop(pending);
        st.metrics.queue_rejections.with_label_values(&[served.model.meta.name.as_str()]).inc();
        return Err(rejected(ApiError::overloaded("server is overloaded: the inference queue is full, retry later")));
    } else {
        tokio::time::timeout_at(deadline.into(), rx).await.ok().map(Result::ok)
    };
    drop(pending);
    match received {
        None => {
            st.metrics.limit_rejections.with_label_values(&["request_timeout"]).inc();
            Err(("OTHER", ApiError::overloaded("timed out waiting for inference")))
        }
        Some(None) => Err(("BACKEND", ApiError::internal("inference worker dropped the request"))),
        Some(Some(r)) => {
            if let Ok(a) = &r {
                served.cost.record(body_len, a.timings.compute_input + a.timings.compute_infer + a.timings.compute_output);
            }
            r
        }
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the limit of {max} bytes"))
}

fn run(
    served: &ServedModel,
    scratch: &mut Scratch,
    body: Bytes,
    header_len: Option<usize>,
    limits: &Limits,
    limit_counter: &IntCounterVec,
) -> Result<Answer, Failure> {
    let model = &served.model;
    let meta = &model.meta;
    let t0 = Instant::now();
    let raw_input = match meta.inputs.as_slice() {
        [only] => Some(RawInput { name: &only.name, datatype: only.datatype, dims: &only.shape }),
        _ => None,
    };
    let req = decode_request(body, header_len, limits, raw_input).map_err(|e: DecodeError| {
        if let Some(limit) = e.limit() {
            limit_counter.with_label_values(&[limit]).inc();
        }
        rejected(ApiError::bad_request(e.to_string()))
    })?;
    model.check_inputs(&req.inputs).map_err(engine_error)?;
    let wanted: Vec<(usize, bool)> = match &req.outputs {
        None => (0..meta.outputs.len()).map(|i| (i, req.binary_output)).collect(),
        Some(outs) => {
            let mut w = Vec::with_capacity(outs.len());
            for o in outs {
                let i = meta
                    .outputs
                    .iter()
                    .position(|m| m.name == o.name)
                    .ok_or_else(|| rejected(ApiError::bad_request(format!("unknown output '{}' for model '{}'", o.name, meta.name))))?;
                w.push((i, o.binary.unwrap_or(req.binary_output)));
            }
            w
        }
    };
    let batch = model.batch_size(&req.inputs);
    let inputs = model.prepare(req.inputs).map_err(engine_error)?;
    let t1 = Instant::now();
    let values = model.run(scratch, batch, inputs).map_err(engine_error)?;
    let t2 = Instant::now();
    let mut outputs = model.outputs(values, &wanted).map_err(engine_error)?;
    let version = meta.version.to_string();
    let (body, header_len) = encode_response(&meta.name, &version, req.id.as_deref(), &mut outputs);
    let t3 = Instant::now();
    Ok(Answer {
        body,
        header_len,
        batch,
        timings: Timings { queue: Duration::ZERO, compute_input: t1 - t0, compute_infer: t2 - t1, compute_output: t3 - t2 },
    })
}

fn engine_error(e: EngineError) -> Failure {
    match e {
        EngineError::Client(m) => rejected(ApiError::bad_request(m)),
        EngineError::Internal(detail) => ("BACKEND", ApiError::internal(&detail)),
    }
}
