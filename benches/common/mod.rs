//! Shared set-up of the criterion benches: the bundled models loaded as
//! `serve` loads them, the router's state, and request bodies.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warden::http::{AppState, Health};
use warden::model::LoadedModel;
use warden::model::engine::LoadOptions;
use warden::protocol::{InputTensor, Limits, TensorData};

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Every bundled model, highest version, loaded and warmed up.
pub fn load_models() -> Vec<LoadedModel> {
    let mut out = Vec::new();
    for src in warden::model::scan(&models_dir()).expect("bundled repository scans") {
        let v = src.versions.last().expect("a version");
        let m = LoadedModel::load(&src.name, v.version, &v.path, src.config.as_ref(), &src.config_path, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", src.name));
        if let Some(w) = m.warm_up() {
            panic!("{}: warm-up failed: {w}", src.name);
        }
        out.push(m);
    }
    out
}

/// The router's state with serve's defaults (one inference worker).
pub fn app_state(max_body: usize) -> Arc<AppState> {
    let pool = warden::worker::Pool::start(1, 128).expect("worker threads");
    let health = Health::new(false);
    health.set_ready();
    Arc::new(AppState::new(
        load_models(),
        pool,
        warden::metrics::Metrics::new(),
        Limits::default(),
        max_body,
        Duration::from_secs(30),
        health,
    ))
}

/// A V2 JSON body with one FP32 tensor.
pub fn json_body(name: &str, shape: &[usize], values: &[f32]) -> Bytes {
    let v = serde_json::json!({"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": values}]});
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

/// A binary-extension body with one FP32 tensor; returns the body and the header length.
pub fn binary_body(name: &str, shape: &[usize], values: &[f32]) -> (Bytes, usize) {
    let raw: Vec<u8> = values.iter().flat_map(|f| f.to_le_bytes()).collect();
    let header = serde_json::json!({
        "inputs": [{"name": name, "shape": shape, "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}]
    });
    let mut body = serde_json::to_vec(&header).unwrap();
    let n = body.len();
    body.extend_from_slice(&raw);
    (Bytes::from(body), n)
}

/// One iris row as an input tensor.
pub fn iris_tensor() -> InputTensor {
    let raw: Vec<u8> = [5.1f32, 3.5, 1.4, 0.2].iter().flat_map(|f| f.to_le_bytes()).collect();
    InputTensor {
        name: "float_input".into(),
        datatype: warden::protocol::DataType::F32,
        shape: vec![1, 4],
        data: TensorData::Raw(Bytes::from(raw)),
    }
}

/// `n` pseudo-random floats (fixed; only their size matters to the codec).
pub fn floats(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 / 997.0).collect()
}
