//! HTTP measurement: N keep-alive connections, each with one request in
//! flight, against any KServe V2 server (a small perf_analyzer).
//!
//! The model's metadata (`GET /v2/models/{name}`) gives the inputs; its
//! configuration (`/config`, Triton's extension) gives `max_batch_size`
//! when the server has it. Bodies use the binary tensor extension unless
//! `--json-tensors` is given, and are encoded before the clock starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::engine::{position, progress};
use super::inputs::{InputData, Request as Inputs, random_requests};
use super::report::{BatchResult, Report, histogram, record};
use super::{Amount, BenchError, Plan};
use crate::model::{ModelMeta, TensorMeta};
use crate::protocol::{DataType, TensorData};

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A base URL split into what a connection needs.
#[derive(Debug, Clone)]
struct Base {
    /// `host:port`, for connecting.
    addr: String,
    /// The `Host` header.
    host: String,
    /// Path prefix without a trailing slash.
    prefix: String,
}

fn parse_base(url: &str) -> Result<Base, BenchError> {
    let bad = |why: &str| BenchError::Usage(format!("--url {url}: {why} (expected http://host:port)"));
    let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(bad("only http is supported")),
        None => return Err(bad("no scheme")),
    }
    let auth = uri.authority().ok_or_else(|| bad("no host"))?;
    let port = auth.port_u16().unwrap_or(80);
    Ok(Base { addr: format!("{}:{port}", auth.host()), host: auth.to_string(), prefix: uri.path().trim_end_matches('/').to_string() })
}

async fn connect(base: &Base) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(&base.addr).await.map_err(|e| format!("cannot connect to {}: {e}", base.addr))?;
    // Latency, not throughput of small writes, is what is measured.
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request and its full answer; Err on transport errors and non-200 answers.
async fn call(sender: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> Result<Bytes, String> {
    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| format!("response body: {e}"))?.to_bytes();
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(body)
}

fn get(base: &Base, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("{}{path}", base.prefix))
        .header(hyper::header::HOST, &base.host)
        .body(Full::new(Bytes::new()))
        .expect("a GET with a valid path is a valid request")
}

fn tensor_meta(v: &Value, what: &str) -> Result<TensorMeta, String> {
    let name = v["name"].as_str().ok_or_else(|| format!("{what} without a name"))?.to_string();
    let dt = v["datatype"].as_str().ok_or_else(|| format!("{what} '{name}' without a datatype"))?;
    let datatype: DataType = dt.parse().map_err(|()| format!("{what} '{name}': unknown datatype {dt}"))?;
    let shape: Vec<i64> =
        serde_json::from_value(v["shape"].clone()).map_err(|_| format!("{what} '{name}': shape is not a list of integers"))?;
    Ok(TensorMeta { name, datatype, shape })
}

/// The model's metadata, and `max_batch_size` from the configuration when
/// the server offers one (else: batching if every input's first dimension is -1).
async fn metadata(base: &Base, model: &str) -> Result<ModelMeta, String> {
    let mut c = connect(base).await?;
    let body = call(&mut c, get(base, &format!("/v2/models/{model}"))).await.map_err(|e| format!("model metadata of '{model}': {e}"))?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("model metadata of '{model}' is not JSON: {e}"))?;
    let list = |key: &str| -> Result<Vec<TensorMeta>, String> {
        v[key].as_array().map(|a| a.iter().map(|t| tensor_meta(t, key.trim_end_matches('s'))).collect()).unwrap_or(Ok(vec![]))
    };
    let inputs = list("inputs")?;
    let outputs = list("outputs")?;
    if inputs.is_empty() {
        return Err(format!("the metadata of model '{model}' lists no inputs"));
    }
    let configured = match call(&mut c, get(base, &format!("/v2/models/{model}/config"))).await {
        Ok(b) => serde_json::from_slice::<Value>(&b).ok().and_then(|c| c["max_batch_size"].as_u64()),
        Err(_) => None,
    };
    let max_batch_size = match configured {
        Some(n) => n as u32,
        None if inputs.iter().all(|t| t.shape.first() == Some(&-1)) => u32::MAX,
        None => 0,
    };
    Ok(ModelMeta { name: model.to_string(), version: 0, max_batch_size, inputs, outputs })
}

/// JSON numbers of a raw little-endian tensor.
fn json_data(t: &crate::protocol::InputTensor) -> Result<Value, String> {
    let raw = match &t.data {
        TensorData::Strings(v) => {
            return Ok(Value::Array(v.iter().map(|b| Value::String(String::from_utf8_lossy(b).into_owned())).collect()));
        }
        TensorData::Raw(r) => r,
    };
    macro_rules! nums {
        ($ty:ty, $n:expr) => {
            raw.chunks_exact($n).map(|c| json!(<$ty>::from_le_bytes(c.try_into().expect("chunk size")))).collect()
        };
    }
    let values: Vec<Value> = match t.datatype {
        DataType::Bool => raw.iter().map(|&b| json!(b != 0)).collect(),
        DataType::U8 => raw.iter().map(|&b| json!(b)).collect(),
        DataType::I8 => raw.iter().map(|&b| json!(b as i8)).collect(),
        DataType::U16 => nums!(u16, 2),
        DataType::I16 => nums!(i16, 2),
        DataType::U32 => nums!(u32, 4),
        DataType::I32 => nums!(i32, 4),
        DataType::U64 => nums!(u64, 8),
        DataType::I64 => nums!(i64, 8),
        DataType::F32 => nums!(f32, 4),
        DataType::F64 => nums!(f64, 8),
        DataType::F16 | DataType::Bf16 | DataType::Bytes => {
            return Err(format!("input '{}': {} has no JSON form; drop --json-tensors", t.name, t.datatype));
        }
    };
    Ok(Value::Array(values))
}

/// A request body and its `Inference-Header-Content-Length`.
pub(crate) fn encode(inputs: &Inputs, outputs: &[TensorMeta], binary: bool) -> Result<(Bytes, Option<usize>), String> {
    if !binary {
        let ins: Vec<Value> = inputs
            .iter()
            .map(|t| Ok(json!({"name": t.name, "shape": t.shape, "datatype": t.datatype.as_str(), "data": json_data(t)?})))
            .collect::<Result<_, String>>()?;
        return Ok((Bytes::from(serde_json::to_vec(&json!({ "inputs": ins })).expect("JSON values serialise")), None));
    }
    let mut tail = Vec::new();
    let mut ins = Vec::with_capacity(inputs.len());
    for t in inputs {
        let before = tail.len();
        match &t.data {
            TensorData::Raw(r) => tail.extend_from_slice(r),
            TensorData::Strings(v) => {
                for s in v {
                    tail.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    tail.extend_from_slice(s);
                }
            }
        }
        let size = tail.len() - before;
        ins.push(json!({"name": t.name, "shape": t.shape, "datatype": t.datatype.as_str(), "parameters": {"binary_data_size": size}}));
    }
    let outs: Vec<Value> = outputs.iter().map(|o| json!({"name": o.name, "parameters": {"binary_data": true}})).collect();
    let mut body = serde_json::to_vec(&json!({"inputs": ins, "outputs": outs})).expect("JSON values serialise");
    let header = body.len();
    body.extend_from_slice(&tail);
    Ok((Bytes::from(body), Some(header)))
}

pub(crate) fn run(
    url: &str,
    model: &str,
    concurrency: usize,
    binary: bool,
    plan: &Plan,
    data: Option<&InputData>,
) -> Result<Report, BenchError> {
    let base = parse_base(url)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(concurrency.clamp(1, cpus))
        .enable_all()
        .build()
        .map_err(|e| BenchError::Http(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let meta = metadata(&base, model).await.map_err(BenchError::Http)?;
        let mut results = Vec::new();
        for &batch in &plan.batches {
            let max = meta.max_batch_size as usize;
            if (max == 0 && batch > 1) || (max > 0 && batch > max) {
                eprintln!("warden bench: skipping batch {batch}: model '{model}' accepts batches up to {}", max.max(1));
                continue;
            }
            let requests = match data {
                Some(d) => d.requests(&meta, batch).map_err(BenchError::Inputs)?,
                None => random_requests(&meta, batch, plan.seed).map_err(BenchError::Inputs)?,
            };
            let bodies: Vec<(Bytes, Option<usize>)> =
                requests.iter().map(|r| encode(r, &meta.outputs, binary)).collect::<Result<_, _>>().map_err(BenchError::Inputs)?;
            results.push(measure(&base, model, batch, bodies, concurrency, plan).await?);
        }
        if results.is_empty() {
            return Err(BenchError::Usage(format!("no batch size in {:?} fits model '{model}'", plan.batches)));
        }
        Ok(Report {
            mode: "http",
            model: model.to_string(),
            version: None,
            target: url.to_string(),
            concurrency,
            load_ms: None,
            warm_up_ms: None,
            peak_rss_bytes: None,
            lockdown: "whatever the server applies",
            results,
        })
    })
}

struct Shared {
    done: AtomicU64,
    errors: AtomicU64,
    remaining: AtomicU64,
    stop: AtomicBool,
    first_error: std::sync::Mutex<Option<String>>,
}

async fn measure(
    base: &Base,
    model: &str,
    batch: usize,
    bodies: Vec<(Bytes, Option<usize>)>,
    concurrency: usize,
    plan: &Plan,
) -> Result<BatchResult, BenchError> {
    let path = format!("{}/v2/models/{model}/infer", base.prefix);
    let shared = Arc::new(Shared {
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        remaining: AtomicU64::new(match plan.amount {
            Amount::Iterations(n) => n,
            Amount::Duration(_) => u64::MAX,
        }),
        stop: AtomicBool::new(false),
        first_error: std::sync::Mutex::new(None),
    });
    let bodies = Arc::new(bodies);
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let warmup = plan.warmup;
    let amount = plan.amount;
    let mut tasks = Vec::with_capacity(concurrency);
    for c in 0..concurrency {
        let (base, path, shared, bodies, barrier) = (base.clone(), path.clone(), shared.clone(), bodies.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut sender = None;
            let mut i = c;
            let make = |i: usize| {
                let (body, header) = &bodies[i % bodies.len()];
                let mut r = Request::post(&path).header(hyper::header::HOST, &base.host);
                r = match header {
                    Some(n) => {
                        r.header("Inference-Header-Content-Length", *n).header(hyper::header::CONTENT_TYPE, "application/octet-stream")
                    }
                    None => r.header(hyper::header::CONTENT_TYPE, "application/json"),
                };
                r.body(Full::new(body.clone())).expect("a POST with a valid path is a valid request")
            };
            let fail = |e: String| {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared.first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            };
            // One attempt: connects when needed, drops the connection after an error.
            async fn attempt(base: &Base, sender: &mut Option<SendRequest<Full<Bytes>>>, req: Request<Full<Bytes>>) -> Result<(), String> {
                if sender.is_none() {
                    *sender = Some(connect(base).await?);
                }
                let s = sender.as_mut().expect("connected above");
                match tokio::time::timeout(REQUEST_TIMEOUT, call(s, req)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => {
                        if !e.starts_with("HTTP ") {
                            *sender = None;
                        }
                        Err(e)
                    }
                    Err(_) => {
                        *sender = None;
                        Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
                    }
                }
            }
            let warm_until = Instant::now() + warmup;
            while Instant::now() < warm_until {
                if let Err(e) = attempt(&base, &mut sender, make(i)).await {
                    // A server that fails in warm-up fails the run: report it now.
                    fail(e);
                    break;
                }
                i += 1;
            }
            barrier.wait().await;
            let deadline = match amount {
                Amount::Duration(d) => Some(Instant::now() + d),
                Amount::Iterations(_) => None,
            };
            while !shared.stop.load(Ordering::Relaxed) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if deadline.is_none() && shared.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1)).is_err()
                {
                    break;
                }
                let req = make(i);
                i += 1;
                let started = Instant::now();
                match attempt(&base, &mut sender, req).await {
                    Ok(()) => {
                        record(&mut h, started.elapsed());
                        shared.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => fail(e),
                }
            }
            h
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let bar = progress(plan, batch);
    let ticker = {
        let (shared, bar) = (shared.clone(), bar.clone());
        let plan = plan.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                bar.set_position(position(&plan, started.elapsed(), shared.done.load(Ordering::Relaxed)));
            }
        })
    };
    let mut merged = histogram();
    for t in tasks {
        let h = t.await.map_err(|e| BenchError::Http(format!("a connection task failed: {e}")))?;
        // Cannot fail: both histograms share bounds and precision.
        let _ = merged.add(&h);
    }
    let wall = started.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    let errors = shared.errors.load(Ordering::Relaxed);
    let first = shared.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if merged.is_empty() || (errors > 0 && merged.len() < errors) {
        return Err(BenchError::Http(format!(
            "model '{model}', batch {batch}: {errors} requests failed, {} succeeded; first error: {}",
            merged.len(),
            first.unwrap_or_default()
        )));
    }
    if let Some(e) = first {
        eprintln!("warden bench: batch {batch}: {errors} requests failed; first error: {e}");
    }
    Ok(BatchResult::new(batch, errors, wall, merged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{InputTensor, Limits, decode_request};

    #[test]
    fn urls_parse() {
        let b = parse_base("http://127.0.0.1:8000/").unwrap();
        assert_eq!((b.addr.as_str(), b.host.as_str(), b.prefix.as_str()), ("127.0.0.1:8000", "127.0.0.1:8000", ""));
        assert_eq!(parse_base("http://example.com/api").unwrap().addr, "example.com:80");
        assert_eq!(parse_base("http://[::1]:9").unwrap().addr, "[::1]:9");
        assert!(parse_base("https://x").is_err());
        assert!(parse_base("localhost:8000").is_err());
    }

    /// The bodies the benchmark sends are ones warden's own decoder accepts.
    #[test]
    fn bodies_decode_with_the_server_codec() {
        let t = InputTensor {
            name: "x".into(),
            datatype: DataType::F32,
            shape: vec![1, 2],
            data: TensorData::Raw(Bytes::from([1f32, 2.5].iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>())),
        };
        let out = [TensorMeta { name: "y".into(), datatype: DataType::F32, shape: vec![-1, 1] }];
        for binary in [true, false] {
            let (body, header) = encode(&vec![t.clone()], &out, binary).unwrap();
            let req = decode_request(body, header, &Limits::default(), None).unwrap();
            assert_eq!(req.inputs, vec![t.clone()], "binary={binary}");
        }
    }
}
