//! The real binary on port 0: metadata, config and inference on every
//! bundled model, JSON and binary, compared with the reference outputs.

use serde_json::{Value, json};

use crate::support::{Server, assert_close, reference};

const MODELS: &[&str] = &["iris", "digits", "mnist_cnn"];

fn json_request(r: &Value) -> Value {
    json!({"id": "req-1", "inputs": r["inputs"]})
}

fn check_outputs(got: &Value, r: &Value, model: &str) {
    let rtol = r["rtol"].as_f64().unwrap_or(1e-5);
    let atol = r["atol"].as_f64().unwrap_or(1e-6);
    for want in r["outputs"].as_array().unwrap() {
        let name = want["name"].as_str().unwrap();
        let out = got["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{model}: no output {name} in {got}"));
        assert_eq!(out["datatype"], want["datatype"], "{model}/{name}");
        assert_eq!(out["shape"], want["shape"], "{model}/{name}");
        if want["datatype"] == "INT64" {
            assert_eq!(out["data"], want["data"], "{model}/{name}");
        } else {
            assert_close(&out["data"], &want["data"], rtol, atol, &format!("{model}/{name}"));
        }
    }
}

#[test]
fn health_and_server_metadata() {
    let s = Server::start(&[]);
    assert_eq!(s.get("/v2/health/live").status, 200);
    assert_eq!(s.get("/v2/health/ready").status, 200);
    let meta = s.get("/v2");
    assert_eq!(meta.status, 200);
    let m = meta.json();
    assert_eq!(m["name"], "warden");
    let ext: Vec<&str> = m["extensions"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(ext.contains(&"binary_tensor_data") && ext.contains(&"statistics"), "{ext:?}");
    for model in MODELS {
        assert_eq!(s.get(&format!("/v2/models/{model}/ready")).status, 200);
        assert_eq!(s.get(&format!("/v2/models/{model}/versions/1/ready")).status, 200);
    }
}

#[test]
fn model_metadata_and_config() {
    let s = Server::start(&[]);
    let m = s.get("/v2/models/iris").json();
    assert_eq!(m["name"], "iris");
    assert_eq!(m["platform"], "onnxruntime_onnx");
    assert_eq!(m["versions"], json!(["1"]));
    assert_eq!(m["inputs"], json!([{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]));
    assert_eq!(m["outputs"][0]["name"], "label");
    assert_eq!(m["outputs"][0]["datatype"], "INT64");
    assert_eq!(m["outputs"][1]["shape"], json!([-1, 3]));
    assert_eq!(s.get("/v2/models/iris/versions/1").json(), m);

    let c = s.get("/v2/models/iris/config").json();
    assert_eq!(c["platform"], "onnxruntime_onnx");
    assert_eq!(c["max_batch_size"], 64);
    assert_eq!(c["input"], json!([{"name": "float_input", "data_type": "TYPE_FP32", "dims": [4]}]));

    // config.pbtxt is honoured: batch 8, dims without the batch dimension.
    let c = s.get("/v2/models/mnist_cnn/config").json();
    assert_eq!(c["max_batch_size"], 8);
    assert_eq!(c["input"][0]["dims"], json!([1, 28, 28]));
    let m = s.get("/v2/models/mnist_cnn").json();
    assert_eq!(m["inputs"][0]["shape"], json!([-1, 1, 28, 28]));
    assert_eq!(m["outputs"][0]["shape"], json!([-1, 10]));
}

#[test]
fn json_inference_matches_the_reference() {
    let s = Server::start(&[]);
    for model in MODELS {
        let r = reference(model);
        for path in [format!("/v2/models/{model}/infer"), format!("/v2/models/{model}/versions/1/infer")] {
            let resp = s.post(&path, &[], json_request(&r).to_string().as_bytes());
            assert_eq!(resp.status, 200, "{model}: {}", String::from_utf8_lossy(&resp.body));
            assert_eq!(resp.header("content-type"), Some("application/json"));
            let got = resp.json();
            assert_eq!(got["model_name"], *model);
            assert_eq!(got["model_version"], "1");
            assert_eq!(got["id"], "req-1");
            check_outputs(&got, &r, model);
        }
    }
}

/// Nested `data` is accepted as well as flat.
#[test]
fn nested_json_data() {
    let s = Server::start(&[]);
    let body = json!({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]});
    let got = s.post("/v2/models/iris/infer", &[], body.to_string().as_bytes()).json();
    assert_eq!(got["outputs"][0]["data"], json!([0, 2]));
    assert!(got.get("id").is_none());
}

fn f32_bytes(v: &Value) -> Vec<u8> {
    v.as_array().unwrap().iter().flat_map(|x| (x.as_f64().unwrap() as f32).to_le_bytes()).collect()
}

#[test]
fn binary_inference_matches_the_reference() {
    let s = Server::start(&[]);
    for model in MODELS {
        let r = reference(model);
        let input = &r["inputs"][0];
        let raw = f32_bytes(&input["data"]);
        let header = json!({
            "inputs": [{"name": input["name"], "shape": input["shape"], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
            "parameters": {"binary_data_output": true}
        })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&raw);
        let hl = header.len().to_string();
        let resp = s.post(&format!("/v2/models/{model}/infer"), &[("Inference-Header-Content-Length", &hl)], &body);
        assert_eq!(resp.status, 200, "{model}: {}", String::from_utf8_lossy(&resp.body));
        assert_eq!(resp.header("content-type"), Some("application/octet-stream"));
        let n: usize = resp.header("inference-header-content-length").unwrap().parse().unwrap();
        let head: Value = serde_json::from_slice(&resp.body[..n]).unwrap();
        let mut offset = n;
        let mut decoded = head.clone();
        for (i, out) in head["outputs"].as_array().unwrap().iter().enumerate() {
            let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
            let bytes = &resp.body[offset..offset + size];
            offset += size;
            let data: Vec<Value> = match out["datatype"].as_str().unwrap() {
                "FP32" => bytes.chunks_exact(4).map(|c| json!(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
                "INT64" => bytes.chunks_exact(8).map(|c| json!(i64::from_le_bytes(c.try_into().unwrap()))).collect(),
                other => panic!("unexpected {other}"),
            };
            decoded["outputs"][i]["data"] = json!(data);
        }
        assert_eq!(offset, resp.body.len());
        check_outputs(&decoded, &r, model);
    }
}

#[test]
fn output_selection_and_per_output_binary() {
    let s = Server::start(&[]);
    let r = reference("iris");
    let body = json!({"inputs": r["inputs"], "outputs": [{"name": "probabilities", "parameters": {"binary_data": false}}]});
    let got = s.post("/v2/models/iris/infer", &[], body.to_string().as_bytes()).json();
    assert_eq!(got["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(got["outputs"][0]["name"], "probabilities");

    // Request-level binary with one output overridden to JSON.
    let body = json!({"inputs": r["inputs"], "parameters": {"binary_data_output": true},
        "outputs": [{"name": "label", "parameters": {"binary_data": false}}, {"name": "probabilities"}]});
    let resp = s.post("/v2/models/iris/infer", &[], body.to_string().as_bytes());
    let n: usize = resp.header("inference-header-content-length").unwrap().parse().unwrap();
    let head: Value = serde_json::from_slice(&resp.body[..n]).unwrap();
    assert_eq!(head["outputs"][0]["data"], r["outputs"][0]["data"]);
    assert_eq!(head["outputs"][1]["parameters"]["binary_data_size"], 5 * 3 * 4);
    assert_eq!(resp.body.len(), n + 60);
}

#[test]
fn raw_binary_mode() {
    let s = Server::start(&[]);
    let r = reference("iris");
    let raw = f32_bytes(&r["inputs"][0]["data"]);
    let resp = s.post("/v2/models/iris/infer", &[("Inference-Header-Content-Length", "0")], &raw);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let n: usize = resp.header("inference-header-content-length").unwrap().parse().unwrap();
    let head: Value = serde_json::from_slice(&resp.body[..n]).unwrap();
    assert_eq!(head["outputs"][0]["shape"], json!([5]));
}
