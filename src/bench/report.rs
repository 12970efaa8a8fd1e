//! Results: HDR histograms summarised into percentiles, printed as a
//! table, written as JSON, and drawn as a latency-percentile chart.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds, 1 ns to 10 minutes, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Records one latency; values beyond the range are clamped to it.
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().clamp(1, u128::from(u64::MAX)) as u64);
}

/// Percentiles of one batch size, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1e3;
        Latency {
            min: us(h.min()),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// The measurement of one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResult {
    pub batch: usize,
    /// Requests measured (each carries `batch` inferences).
    pub requests: u64,
    /// Requests that failed (HTTP mode: transport errors and non-200 answers).
    pub errors: u64,
    /// Wall time of the measured phase, in seconds.
    pub seconds: f64,
    pub requests_per_second: f64,
    /// Inferences per second: requests per second × batch.
    pub throughput: f64,
    /// Request latency in microseconds.
    pub latency_us: Latency,
    #[serde(skip)]
    pub(crate) histogram: Histogram<u64>,
}

impl BatchResult {
    pub(crate) fn new(batch: usize, errors: u64, wall: Duration, histogram: Histogram<u64>) -> BatchResult {
        let requests = histogram.len();
        let seconds = wall.as_secs_f64().max(1e-9);
        let rps = requests as f64 / seconds;
        BatchResult {
            batch,
            requests,
            errors,
            seconds,
            requests_per_second: rps,
            throughput: rps * batch as f64,
            latency_us: Latency::of(&histogram),
            histogram,
        }
    }
}

/// Everything one `warden bench` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `engine` (in-process) or `http`.
    pub mode: &'static str,
    pub model: String,
    pub version: Option<u64>,
    /// Engine mode: where the model came from; HTTP mode: the base URL.
    pub target: String,
    /// Engine mode: inference threads; HTTP mode: connections.
    pub concurrency: usize,
    /// Reading, parsing and optimising the model (engine mode).
    pub load_ms: Option<f64>,
    /// The warm-up run `serve` does after loading (engine mode).
    pub warm_up_ms: Option<f64>,
    /// Peak resident set of this process (engine mode: the model's footprint
    /// plus the benchmark's own).
    pub peak_rss_bytes: Option<u64>,
    pub lockdown: &'static str,
    pub results: Vec<BatchResult>,
}

impl Report {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} {} ({}, concurrency {})", self.mode, self.model, self.target, self.concurrency);
        if let (Some(l), Some(w)) = (self.load_ms, self.warm_up_ms) {
            let _ = writeln!(s, "load+optimise {l:.1} ms, warm-up {w:.1} ms");
        }
        if let Some(r) = self.peak_rss_bytes {
            let _ = writeln!(s, "peak RSS {:.1} MiB", r as f64 / (1 << 20) as f64);
        }
        let _ = writeln!(
            s,
            "{:>6} {:>9} {:>7} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "batch", "requests", "errors", "infer/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        for r in &self.results {
            let l = &r.latency_us;
            let _ = writeln!(
                s,
                "{:>6} {:>9} {:>7} {:>12.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                r.batch, r.requests, r.errors, r.throughput, l.p50, l.p90, l.p99, l.p99_9, l.max
            );
        }
        s
    }

    /// Draws latency against percentile, one line per batch size. The
    /// percentile axis is logarithmic in 1/(1-q) ("nines"), so the tail gets
    /// as much room as the median.
    pub fn plot(&self, path: &Path) -> Result<(), String> {
        use plotters::prelude::*;
        let err = |e: &dyn std::fmt::Display| e.to_string();

        let series: Vec<(usize, Vec<(f64, f64)>)> = self
            .results
            .iter()
            .filter(|r| !r.histogram.is_empty())
            .map(|r| {
                // The deepest percentile worth drawing has a few samples beyond it.
                let deepest = ((r.histogram.len() as f64).log10() - 0.5).clamp(1.0, 5.0);
                let points = (0..=(deepest * 20.0) as usize)
                    .map(|i| {
                        let nines = i as f64 / 20.0;
                        let q = 1.0 - 10f64.powf(-nines);
                        (nines, r.histogram.value_at_quantile(q) as f64 / 1e3)
                    })
                    .collect();
                (r.batch, points)
            })
            .collect();
        let x_max = series.iter().flat_map(|(_, p)| p.last().map(|&(x, _)| x)).fold(1.0, f64::max).ceil();
        let y_max = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)).fold(1.0, f64::max) * 1.1;

        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let title = format!("{} {} latency by percentile", self.model, self.mode);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs)")
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|x| {
                // Labels only at whole nines: 0%, 90%, 99%, 99.9%...
                if (x - x.round()).abs() > 1e-6 {
                    return String::new();
                }
                let pct = 100.0 * (1.0 - 10f64.powf(-x.round()));
                if pct < 99.0 { format!("{pct:.0}%") } else { format!("{}%", trim(pct)) }
            })
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (batch, points)) in series.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(format!("batch {batch}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }
}

/// `99.90000001` → `99.9`.
fn trim(pct: f64) -> String {
    let s = format!("{pct:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let r = BatchResult::new(4, 0, Duration::from_secs(2), h);
        assert_eq!(r.requests, 1000);
        assert!((r.requests_per_second - 500.0).abs() < 1e-9);
        assert!((r.throughput - 2000.0).abs() < 1e-9);
        let l = &r.latency_us;
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9 && l.p99_9 <= l.max);
        assert_eq!(trim(99.90000001), "99.9");
    }
}
