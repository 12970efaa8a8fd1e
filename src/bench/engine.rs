//! In-process measurement: the model loaded as `serve` loads it, each
//! request run through the worker's path (`check_inputs` → `prepare` →
//! `run` → `outputs`) on threads that each keep their own [`Scratch`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::inputs::{InputData, Request, random_requests};
use super::report::{BatchResult, Report, histogram, record};
use super::{Amount, BenchError, Plan};
use crate::model::engine::LoadOptions;
use crate::model::{LoadedModel, ModelSource, Scratch, VersionSource};

/// Finds the model the target names: an `.onnx` file, a model directory, or
/// a repository plus `--model`. Returns the source and the version to load
/// (the highest, as `serve` answers requests without a version).
fn resolve(target: &Path, model: Option<&str>) -> Result<(ModelSource, VersionSource), BenchError> {
    let err = |m: String| BenchError::Model(m);
    if target.is_file() {
        let name = model
            .map(str::to_owned)
            .or_else(|| target.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .ok_or_else(|| err(format!("{}: cannot name the model; use --model", target.display())))?;
        let v = VersionSource { version: 1, path: target.to_path_buf() };
        let src = ModelSource {
            name,
            dir: target.parent().unwrap_or(Path::new(".")).to_path_buf(),
            config: None,
            config_path: target.with_file_name("config.pbtxt"),
            versions: vec![v.clone()],
        };
        return Ok((src, v));
    }
    if !target.is_dir() {
        return Err(err(format!("{}: no such file or directory", target.display())));
    }
    let is_model_dir = target.join("config.pbtxt").is_file()
        || std::fs::read_dir(target)
            .map_err(|e| err(format!("{}: {e}", target.display())))?
            .flatten()
            .any(|e| e.path().join("model.onnx").is_file() && e.file_name().to_str().is_some_and(|n| n.parse::<u64>().is_ok()));
    let (root, wanted) = if is_model_dir {
        let dir = target.canonicalize().map_err(|e| err(format!("{}: {e}", target.display())))?;
        let name = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let parent = dir.parent().map(Path::to_path_buf);
        match (parent, name) {
            (Some(p), Some(n)) => {
                if model.is_some_and(|m| m != n) {
                    return Err(BenchError::Usage(format!("{} is the model '{n}', but --model names another", target.display())));
                }
                (p, Some(n))
            }
            _ => return Err(err(format!("{}: not a model directory", target.display()))),
        }
    } else {
        (target.to_path_buf(), model.map(str::to_owned))
    };
    let sources = crate::model::scan(&root).map_err(|e| err(e.to_string()))?;
    let names = || sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let src = match wanted {
        Some(n) => {
            sources.iter().find(|s| s.name == n).ok_or_else(|| err(format!("no model '{n}' in {} (found: {})", root.display(), names())))?
        }
        None if sources.len() == 1 => &sources[0],
        None => return Err(BenchError::Usage(format!("{} holds several models ({}); choose one with --model", root.display(), names()))),
    };
    let v = src.versions.last().ok_or_else(|| err(format!("model '{}' has no version", src.name)))?.clone();
    Ok((src.clone(), v))
}

pub(crate) fn run(target: &Path, model: Option<&str>, threads: usize, plan: &Plan, data: Option<&InputData>) -> Result<Report, BenchError> {
    let (src, v) = resolve(target, model)?;
    let loaded = LoadedModel::load(&src.name, v.version, &v.path, src.config.as_ref(), &src.config_path, &LoadOptions::default())
        .map_err(|e| BenchError::Model(format!("model '{}' version {}: {e}", src.name, v.version)))?;
    let warm = Instant::now();
    if let Some(w) = loaded.warm_up() {
        eprintln!("warden bench: model '{}': the warm-up run failed ({w}); the model may fail on some inputs", src.name);
    }
    let warm_up = warm.elapsed();

    let mut results = Vec::new();
    for &batch in &plan.batches {
        let max = loaded.meta.max_batch_size as usize;
        if (max == 0 && batch > 1) || (max > 0 && batch > max) {
            eprintln!("warden bench: skipping batch {batch}: model '{}' accepts batches up to {}", src.name, max.max(1));
            continue;
        }
        let requests = match data {
            Some(d) => d.requests(&loaded.meta, batch).map_err(BenchError::Inputs)?,
            None => random_requests(&loaded.meta, batch, plan.seed).map_err(BenchError::Inputs)?,
        };
        results.push(measure(&loaded, batch, &requests, threads, plan)?);
    }
    if results.is_empty() {
        return Err(BenchError::Usage(format!("no batch size in {:?} fits model '{}'", plan.batches, src.name)));
    }
    Ok(Report {
        mode: "engine",
        model: src.name.clone(),
        version: Some(v.version),
        target: v.path.display().to_string(),
        concurrency: threads,
        load_ms: Some(loaded.load_time.as_secs_f64() * 1e3),
        warm_up_ms: Some(warm_up.as_secs_f64() * 1e3),
        peak_rss_bytes: Some(crate::metrics::max_rss_bytes()),
        lockdown: "off (the benchmark never applies it)",
        results,
    })
}

/// One inference as a worker runs it; the request is cloned beforehand.
fn infer(model: &LoadedModel, scratch: &mut Scratch, req: Request, wanted: &[(usize, bool)]) -> Result<(), String> {
    model.check_inputs(&req).map_err(|e| e.to_string())?;
    let batch = model.batch_size(&req);
    let values = model.prepare(req).map_err(|e| e.to_string())?;
    let out = model.run(scratch, batch, values).map_err(|e| e.to_string())?;
    std::hint::black_box(model.outputs(out, wanted).map_err(|e| e.to_string())?);
    Ok(())
}

fn measure(model: &LoadedModel, batch: usize, requests: &[Request], threads: usize, plan: &Plan) -> Result<BatchResult, BenchError> {
    let wanted: Vec<(usize, bool)> = (0..model.meta.outputs.len()).map(|i| (i, true)).collect();
    let done = AtomicU64::new(0);
    let remaining = AtomicU64::new(match plan.amount {
        Amount::Iterations(n) => n,
        Amount::Duration(_) => u64::MAX,
    });
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let merged = Mutex::new(histogram());
    let barrier = Barrier::new(threads + 1);
    let bar = progress(plan, batch);

    let wall = std::thread::scope(|s| {
        for t in 0..threads {
            let (wanted, done, remaining, failed, first_error, merged, barrier) =
                (&wanted, &done, &remaining, &failed, &first_error, &merged, &barrier);
            s.spawn(move || {
                let mut scratch = Scratch::default();
                let mut h: Histogram<u64> = histogram();
                let mut i = t;
                let fail = |e: String| {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                };
                let warm_until = Instant::now() + plan.warmup;
                while Instant::now() < warm_until && !failed.load(Ordering::Relaxed) {
                    if let Err(e) = infer(model, &mut scratch, requests[i % requests.len()].clone(), wanted) {
                        fail(e);
                    }
                    i += 1;
                }
                barrier.wait();
                let deadline = match plan.amount {
                    Amount::Duration(d) => Some(Instant::now() + d),
                    Amount::Iterations(_) => None,
                };
                while !failed.load(Ordering::Relaxed) {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    if deadline.is_none() && remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1)).is_err() {
                        break;
                    }
                    let req = requests[i % requests.len()].clone();
                    let started = Instant::now();
                    if let Err(e) = infer(model, &mut scratch, req, wanted) {
                        fail(e);
                        break;
                    }
                    record(&mut h, started.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                // Cannot fail: both histograms share bounds and precision.
                let _ = merged.lock().unwrap_or_else(|p| p.into_inner()).add(&h);
            });
        }
        barrier.wait();
        let started = Instant::now();
        while done.load(Ordering::Relaxed) < expected(plan) && !failed.load(Ordering::Relaxed) {
            if let Amount::Duration(d) = plan.amount
                && started.elapsed() >= d
            {
                break;
            }
            bar.set_position(position(plan, started.elapsed(), done.load(Ordering::Relaxed)));
            std::thread::sleep(Duration::from_millis(50));
        }
        started
    });
    let wall = wall.elapsed();
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(BenchError::Model(format!("model '{}', batch {batch}: {e}", model.meta.name)));
    }
    Ok(BatchResult::new(batch, 0, wall, merged.into_inner().unwrap_or_else(|p| p.into_inner())))
}

fn expected(plan: &Plan) -> u64 {
    match plan.amount {
        Amount::Iterations(n) => n,
        Amount::Duration(_) => u64::MAX,
    }
}

/// Position in the bar's unit: milliseconds or requests.
pub(crate) fn position(plan: &Plan, elapsed: Duration, done: u64) -> u64 {
    match plan.amount {
        Amount::Duration(_) => elapsed.as_millis() as u64,
        Amount::Iterations(_) => done,
    }
}

/// A progress bar on a terminal; hidden otherwise (scripts, CI, pipes).
pub(crate) fn progress(plan: &Plan, batch: usize) -> indicatif::ProgressBar {
    if !plan.progress {
        return indicatif::ProgressBar::hidden();
    }
    let (len, unit) = match plan.amount {
        Amount::Duration(d) => (d.as_millis() as u64, "ms"),
        Amount::Iterations(n) => (n, "requests"),
    };
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(&format!("batch {batch:>4} [{{bar:40}}] {{pos}}/{{len}} {unit}"))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
