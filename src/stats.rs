//! Triton's statistics extension: cumulative per-model-version counters,
//! kept by warden itself (the lockdown forbids reading `/proc`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A count and a cumulative duration.
#[derive(Debug, Default)]
pub struct Stat {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Stat {
    pub fn add(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn json(&self) -> Value {
        json!({"count": self.count.load(Ordering::Relaxed), "ns": self.ns.load(Ordering::Relaxed)})
    }
}

/// Timings of one successful execution.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub queue: Duration,
    pub compute_input: Duration,
    pub compute_infer: Duration,
    pub compute_output: Duration,
}

#[derive(Debug, Default)]
struct BatchStats {
    compute_input: Stat,
    compute_infer: Stat,
    compute_output: Stat,
}

/// Statistics of one model version.
#[derive(Debug, Default)]
pub struct ModelStats {
    success: Stat,
    fail: Stat,
    queue: Stat,
    compute_input: Stat,
    compute_infer: Stat,
    compute_output: Stat,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
    /// Keyed by batch size, which is bounded by `max_batch_size`.
    batches: Mutex<BTreeMap<usize, BatchStats>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ModelStats {
    /// Records a successful request of `batch` inferences.
    pub fn success(&self, batch: usize, total: Duration, t: &Timings) {
        self.success.add(total);
        self.queue.add(t.queue);
        self.compute_input.add(t.compute_input);
        self.compute_infer.add(t.compute_infer);
        self.compute_output.add(t.compute_output);
        self.inference_count.fetch_add(batch as u64, Ordering::Relaxed);
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.last_inference_ms.store(now_ms(), Ordering::Relaxed);
        let mut b = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let e = b.entry(batch).or_default();
        e.compute_input.add(t.compute_input);
        e.compute_infer.add(t.compute_infer);
        e.compute_output.add(t.compute_output);
    }

    /// Records a failed request.
    pub fn failure(&self, total: Duration) {
        self.fail.add(total);
        self.last_inference_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The `model_stats` entry in Triton's shape.
    pub fn json(&self, name: &str, version: u64) -> Value {
        let zero = json!({"count": 0, "ns": 0});
        let batches: Vec<Value> = self
            .batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(size, b)| {
                json!({"batch_size": size, "compute_input": b.compute_input.json(),
                       "compute_infer": b.compute_infer.json(), "compute_output": b.compute_output.json()})
            })
            .collect();
        json!({
            "name": name,
            "version": version.to_string(),
            "last_inference": self.last_inference_ms.load(Ordering::Relaxed),
            "inference_count": self.inference_count.load(Ordering::Relaxed),
            "execution_count": self.execution_count.load(Ordering::Relaxed),
            "inference_stats": {
                "success": self.success.json(),
                "fail": self.fail.json(),
                "queue": self.queue.json(),
                "compute_input": self.compute_input.json(),
                "compute_infer": self.compute_infer.json(),
                "compute_output": self.compute_output.json(),
                "cache_hit": zero.clone(),
                "cache_miss": zero,
            },
            "batch_stats": batches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accumulate() {
        let s = ModelStats::default();
        let t = Timings { queue: Duration::from_nanos(10), ..Timings::default() };
        s.success(4, Duration::from_nanos(100), &t);
        s.success(1, Duration::from_nanos(50), &t);
        s.failure(Duration::from_nanos(7));
        let j = s.json("m", 2);
        assert_eq!(j["version"], "2");
        assert_eq!(j["inference_count"], 5);
        assert_eq!(j["execution_count"], 2);
        assert_eq!(j["inference_stats"]["success"], json!({"count": 2, "ns": 150}));
        assert_eq!(j["inference_stats"]["fail"], json!({"count": 1, "ns": 7}));
        assert_eq!(j["inference_stats"]["queue"], json!({"count": 2, "ns": 20}));
        assert_eq!(j["batch_stats"].as_array().unwrap().len(), 2);
        assert_eq!(j["batch_stats"][0]["batch_size"], 1);
        assert!(j["last_inference"].as_u64().unwrap() > 1_600_000_000_000);
    }
}
