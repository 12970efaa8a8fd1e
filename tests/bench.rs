//! `warden bench`: in-process on each bundled model, over HTTP against a
//! running warden, and the SVG chart.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::Server;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden")).arg("bench").args(args).env_remove("RUST_LOG").output().expect("run warden bench")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "warden bench failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_json(p: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()))
}

/// Sane figures: percentiles ordered, throughput positive and consistent
/// with the request count and the batch.
fn check_results(v: &Value, batches: &[u64]) {
    let results = v["results"].as_array().expect("results");
    let got: Vec<u64> = results.iter().map(|r| r["batch"].as_u64().unwrap()).collect();
    assert_eq!(got, batches, "{v}");
    for r in results {
        let l = &r["latency_us"];
        let f = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("latency_us.{k} missing: {r}"));
        assert!(f("min") > 0.0, "{r}");
        assert!(
            f("min") <= f("p50") && f("p50") <= f("p90") && f("p90") <= f("p99") && f("p99") <= f("p99_9") && f("p99_9") <= f("max"),
            "{r}"
        );
        let requests = r["requests"].as_u64().unwrap();
        assert!(requests > 0, "{r}");
        let tp = r["throughput"].as_f64().unwrap();
        assert!(tp > 0.0, "{r}");
        let expect = requests as f64 * r["batch"].as_f64().unwrap() / r["seconds"].as_f64().unwrap();
        assert!((tp - expect).abs() <= 1e-6 * expect, "{r}");
    }
}

#[test]
fn bench_runs_in_process_on_each_bundled_model() {
    for (model, batches) in [("iris", &[1u64, 8][..]), ("digits", &[1, 8]), ("mnist_cnn", &[1, 8])] {
        let json = scratch(&format!("{model}.json"));
        let dir = crate::support::repo_root().join("models").join(model);
        let out =
            bench(&[dir.to_str().unwrap(), "--batch", "1,8", "--duration", "300ms", "--warmup", "50ms", "--json", json.to_str().unwrap()]);
        ok(&out);
        let v = read_json(&json);
        assert_eq!(v["mode"], "engine");
        assert_eq!(v["model"], model);
        assert_eq!(v["version"], 1);
        assert!(v["load_ms"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{v}");
        check_results(&v, batches);
        // The table on stdout names every batch size.
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("p99.9"), "{table}");
    }
}

#[test]
fn bench_iterations_measure_exactly_that_many_requests() {
    let json = scratch("iter.json");
    let repo = crate::support::repo_root().join("models");
    let out = bench(&[
        repo.to_str().unwrap(),
        "--model",
        "digits",
        "--iterations",
        "137",
        "--threads",
        "2",
        "--warmup",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    ok(&out);
    let v = read_json(&json);
    assert_eq!(v["results"][0]["requests"], 137, "{v}");
    assert_eq!(v["concurrency"], 2);
}

#[test]
fn bench_over_http_against_a_running_warden() {
    let server = Server::start(&[]);
    let url = format!("http://{}", server.http);
    for extra in [&[][..], &["--json-tensors"][..]] {
        let json = scratch(&format!("http{}.json", extra.len()));
        let mut args =
            vec!["--url", &url, "--model", "iris", "--concurrency", "3", "--batch", "1,4", "--iterations", "150", "--warmup", "50ms"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", json.to_str().unwrap()]);
        let out = bench(&args);
        ok(&out);
        let v = read_json(&json);
        assert_eq!(v["mode"], "http");
        check_results(&v, &[1, 4]);
        for r in v["results"].as_array().unwrap() {
            assert_eq!(r["requests"], 150, "{r}");
            assert_eq!(r["errors"], 0, "{r}");
        }
    }
    // The server counted what the benchmark sent: warm-up plus 2 × 150 per mode.
    let stats = server.get("/v2/models/iris/stats").json();
    let count = stats["model_stats"][0]["inference_stats"]["success"]["count"].as_u64().unwrap();
    assert!(count >= 600, "{stats}");
}

#[test]
fn bench_over_http_reports_an_unknown_model() {
    let server = Server::start(&[]);
    let out = bench(&["--url", &format!("http://{}", server.http), "--model", "nope", "--iterations", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'nope'") && err.contains("404"), "{err}");
}

#[test]
fn plot_writes_an_svg_chart() {
    let svg = scratch("chart.svg");
    let dir = crate::support::repo_root().join("models/iris");
    let out = bench(&[dir.to_str().unwrap(), "--batch", "1,2,4", "--iterations", "300", "--warmup", "0s", "--plot", svg.to_str().unwrap()]);
    ok(&out);
    let text = std::fs::read_to_string(&svg).unwrap();
    let body = text.trim_start();
    let body = if body.starts_with("<?xml") { &body[body.find("?>").unwrap() + 2..] } else { body }.trim_start();
    assert!(body.starts_with("<svg") && body.trim_end().ends_with("</svg>"), "not an SVG document: {}", &text[..text.len().min(200)]);
    let root = &body[..body.find('>').unwrap()];
    assert!(root.contains(r#"xmlns="http://www.w3.org/2000/svg""#), "{root}");
    assert_eq!(text.matches("<svg").count(), 1, "one root element");
    // One line and one legend entry per batch size, and the percentile axis.
    for label in ["batch 1", "batch 2", "batch 4", "99%", "percentile"] {
        assert!(text.contains(label), "chart lacks '{label}'");
    }
    assert!(text.matches("<polyline").count() >= 3, "fewer lines than batch sizes");
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = bench(&["models", "--batch", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bench(&["models"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model"), "several models need --model");
    let out = bench(&["/nonexistent/model.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}
