//! Health, metadata, configuration and statistics.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::json_response;
use super::{ApiError, AppState};
use crate::model::PLATFORM;

/// Extensions warden implements completely.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "model_configuration", "statistics"];

fn ok_json(v: &Value) -> Response {
    json_response(StatusCode::OK, serde_json::to_vec(v).expect("a Value serialises"))
}

/// `(model)` or `(model, version)` path parameters.
#[derive(Debug, serde::Deserialize)]
pub struct ModelPath {
    pub model: String,
    pub version: Option<String>,
}

pub async fn live(State(st): State<Arc<AppState>>) -> Response {
    if st.health.is_live() {
        ok_json(&json!({"live": true}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"live":false,"error":"the lockdown blocked a system call; this process should be replaced"}"#.to_vec(),
        )
    }
}

pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.health.is_ready() {
        ok_json(&json!({"ready": true}))
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, br#"{"ready":false,"error":"not ready"}"#.to_vec())
    }
}

pub async fn server_metadata() -> Response {
    ok_json(&json!({"name": "warden", "version": env!("CARGO_PKG_VERSION"), "extensions": EXTENSIONS}))
}

pub async fn model_ready(State(st): State<Arc<AppState>>, Path(p): Path<ModelPath>) -> Result<Response, ApiError> {
    st.lookup(&p.model, p.version.as_deref())?;
    if st.health.is_ready() {
        Ok(ok_json(&json!({"name": p.model, "ready": true})))
    } else {
        Err(ApiError::bad_request(format!("model '{}' is not ready", p.model)))
    }
}

pub async fn model_metadata(State(st): State<Arc<AppState>>, Path(p): Path<ModelPath>) -> Result<Response, ApiError> {
    let served = st.lookup(&p.model, p.version.as_deref())?;
    let meta = &served.model.meta;
    let versions: Vec<String> = match &p.version {
        Some(v) => vec![v.clone()],
        None => st.models[&p.model].keys().map(u64::to_string).collect(),
    };
    let tensors = |ts: &[crate::model::TensorMeta]| -> Vec<Value> {
        ts.iter().map(|t| json!({"name": t.name, "datatype": t.datatype.as_str(), "shape": t.shape})).collect()
    };
    Ok(ok_json(&json!({
        "name": meta.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": tensors(&meta.inputs),
        "outputs": tensors(&meta.outputs),
    })))
}

pub async fn model_config(State(st): State<Arc<AppState>>, Path(p): Path<ModelPath>) -> Result<Response, ApiError> {
    let served = st.lookup(&p.model, p.version.as_deref())?;
    let meta = &served.model.meta;
    let tensors = |ts: &[crate::model::TensorMeta]| -> Vec<Value> {
        ts.iter()
            .map(|t| {
                let dims = meta.config_dims(t);
                if dims.is_empty() && meta.max_batch_size > 0 {
                    // Triton's convention for one value per batch item: dims [1], reshaped to [].
                    json!({"name": t.name, "data_type": t.datatype.config_name(), "dims": [1], "reshape": {"shape": []}})
                } else {
                    json!({"name": t.name, "data_type": t.datatype.config_name(), "dims": dims})
                }
            })
            .collect()
    };
    Ok(ok_json(&json!({
        "name": meta.name,
        "platform": PLATFORM,
        "backend": "onnxruntime",
        "max_batch_size": meta.max_batch_size,
        "input": tensors(&meta.inputs),
        "output": tensors(&meta.outputs),
    })))
}

pub async fn model_stats(State(st): State<Arc<AppState>>, Path(p): Path<ModelPath>) -> Result<Response, ApiError> {
    let stats: Vec<Value> = match &p.version {
        Some(v) => {
            let s = st.lookup(&p.model, Some(v))?;
            vec![s.stats.json(&s.model.meta.name, s.model.meta.version)]
        }
        None => {
            st.lookup(&p.model, None)?;
            st.models[&p.model].values().map(|s| s.stats.json(&s.model.meta.name, s.model.meta.version)).collect()
        }
    };
    Ok(ok_json(&json!({"model_stats": stats})))
}

pub async fn all_stats(State(st): State<Arc<AppState>>) -> Response {
    let stats: Vec<Value> =
        st.models.values().flat_map(|vs| vs.values()).map(|s| s.stats.json(&s.model.meta.name, s.model.meta.version)).collect();
    ok_json(&json!({"model_stats": stats}))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("not found")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}
