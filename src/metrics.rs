//! Prometheus metrics: Triton's `nv_inference_*` names and labels, so
//! existing dashboards work, plus warden's own `warden_*` metrics.
//!
//! Labels are bounded: model names and versions from the repository, route
//! templates, status codes, syscall names from a fixed table. Nothing here
//! reads `/proc` (the lockdown forbids it): RSS comes from `getrusage`.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric warden exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    success: IntCounterVec,
    failure: IntCounterVec,
    count: IntCounterVec,
    exec_count: IntCounterVec,
    pending: IntGaugeVec,
    request_us: IntCounterVec,
    queue_us: IntCounterVec,
    input_us: IntCounterVec,
    infer_us: IntCounterVec,
    output_us: IntCounterVec,
    latency: HistogramVec,
    pub http_requests: IntCounterVec,
    pub queue_rejections: IntCounterVec,
    pub inflight: IntGauge,
    pub open_connections: IntGauge,
    pub inline_runs: IntCounter,
    pub limit_rejections: IntCounterVec,
    max_rss: IntGauge,
    pub sandbox_violations: IntCounterVec,
    pub sandbox_layer: IntGaugeVec,
}

/// Handles for one model version, looked up once at start-up.
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    success: IntCounter,
    failure: IntCounterVec,
    labels: [String; 2],
    count: IntCounter,
    exec_count: IntCounter,
    pub pending: IntGauge,
    request_us: IntCounter,
    queue_us: IntCounter,
    input_us: IntCounter,
    infer_us: IntCounter,
    output_us: IntCounter,
    latency: prometheus::Histogram,
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

impl ModelMetrics {
    pub fn success(&self, batch: usize, total: Duration, t: &crate::stats::Timings) {
        self.success.inc();
        self.count.inc_by(batch as u64);
        self.exec_count.inc();
        self.request_us.inc_by(us(total));
        self.queue_us.inc_by(us(t.queue));
        self.input_us.inc_by(us(t.compute_input));
        self.infer_us.inc_by(us(t.compute_infer));
        self.output_us.inc_by(us(t.compute_output));
        self.latency.observe(total.as_secs_f64());
    }

    /// `reason` is one of a fixed set: REJECTED, BACKEND, OTHER (Triton's).
    pub fn failure(&self, reason: &'static str, total: Duration) {
        self.failure.with_label_values(&[self.labels[0].as_str(), self.labels[1].as_str(), reason]).inc();
        self.request_us.inc_by(us(total));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let mv = &["model", "version"];
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definitions are static and valid");
                registry.register(Box::new(m.clone())).expect("metric names are unique");
                m
            }};
        }
        let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), mv);
        let m = Metrics {
            registry: registry.clone(),
            success: reg!(counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes")),
            failure: reg!(IntCounterVec::new(
                Opts::new("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
                &["model", "version", "reason"]
            )),
            count: reg!(counter("nv_inference_count", "Number of inferences performed (a batch of n counts n)")),
            exec_count: reg!(counter("nv_inference_exec_count", "Number of model executions performed")),
            pending: reg!(IntGaugeVec::new(
                Opts::new("nv_inference_pending_request_count", "Instantaneous number of pending requests awaiting execution"),
                mv
            )),
            request_us: reg!(counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds")),
            queue_us: reg!(counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds")),
            input_us: reg!(counter("nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds")),
            infer_us: reg!(counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds")),
            output_us: reg!(counter(
                "nv_inference_compute_output_duration_us",
                "Cumulative inference compute output duration in microseconds"
            )),
            latency: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "warden_inference_request_duration_seconds",
                    "Latency of successful inference requests, from the first byte handled to the response"
                )
                .buckets(vec![
                    25e-6, 50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 1.6e-3, 3.2e-3, 6.4e-3, 12.8e-3, 25.6e-3, 51.2e-3, 0.1024, 0.2048,
                    0.4096, 0.8192, 1.6384, 5.0
                ]),
                mv
            )),
            http_requests: reg!(IntCounterVec::new(
                Opts::new("warden_http_requests_total", "HTTP requests by route template, method and status"),
                &["route", "method", "status"]
            )),
            queue_rejections: reg!(IntCounterVec::new(
                Opts::new("warden_queue_rejections_total", "Inference requests refused with 503 because the queue was full"),
                &["model"]
            )),
            inflight: reg!(IntGauge::new("warden_http_inflight_requests", "HTTP requests being handled")),
            open_connections: reg!(IntGauge::new("warden_http_open_connections", "Open client connections on the inference listener")),
            inline_runs: reg!(IntCounter::new(
                "warden_inline_inferences_total",
                "Inference requests run on the connection's thread (idle server, small request) instead of a worker"
            )),
            limit_rejections: reg!(IntCounterVec::new(
                Opts::new("warden_limit_rejections_total", "Requests refused because they broke a configured limit"),
                &["limit"]
            )),
            max_rss: reg!(IntGauge::new("warden_process_max_resident_memory_bytes", "Peak resident set size (getrusage)")),
            sandbox_violations: reg!(IntCounterVec::new(
                Opts::new("warden_sandbox_violations_total", "System calls blocked by the lockdown, by syscall"),
                &["syscall"]
            )),
            sandbox_layer: reg!(IntGaugeVec::new(
                Opts::new("warden_sandbox_layer_active", "1 when a lockdown layer is in force"),
                &["layer"]
            )),
        };
        let build = reg!(IntGaugeVec::new(Opts::new("warden_build_info", "Build information"), &["version"]));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// Handles for one model version.
    pub fn model(&self, name: &str, version: u64) -> ModelMetrics {
        let v = version.to_string();
        let l = [name, v.as_str()];
        // Failure series exist from the start, so rate() works before the first failure.
        for reason in ["REJECTED", "BACKEND", "OTHER"] {
            self.failure.with_label_values(&[name, v.as_str(), reason]);
        }
        ModelMetrics {
            success: self.success.with_label_values(&l),
            failure: self.failure.clone(),
            labels: [name.to_string(), v.clone()],
            count: self.count.with_label_values(&l),
            exec_count: self.exec_count.with_label_values(&l),
            pending: self.pending.with_label_values(&l),
            request_us: self.request_us.with_label_values(&l),
            queue_us: self.queue_us.with_label_values(&l),
            input_us: self.input_us.with_label_values(&l),
            infer_us: self.infer_us.with_label_values(&l),
            output_us: self.output_us.with_label_values(&l),
            latency: self.latency.with_label_values(&l),
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.max_rss.set(max_rss_bytes() as i64);
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text encoder writes UTF-8")
    }
}

/// Peak RSS from `getrusage` (no `/proc` read).
pub fn max_rss_bytes() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full `rusage` into the pointer we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage returned 0, so the struct is initialised.
    let ru = unsafe { ru.assume_init() };
    (ru.ru_maxrss as u64) * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_triton_names() {
        let m = Metrics::new();
        let mm = m.model("iris", 1);
        mm.success(2, Duration::from_micros(30), &crate::stats::Timings::default());
        mm.failure("REJECTED", Duration::from_micros(5));
        let text = m.render();
        assert!(text.contains("nv_inference_request_success{model=\"iris\",version=\"1\"} 1"), "{text}");
        assert!(text.contains("nv_inference_count{model=\"iris\",version=\"1\"} 2"));
        assert!(text.contains("nv_inference_request_failure{model=\"iris\",reason=\"REJECTED\",version=\"1\"} 1"));
        assert!(text.contains("warden_build_info"));
        assert!(max_rss_bytes() > 0);
    }
}
