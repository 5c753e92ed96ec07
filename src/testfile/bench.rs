//! `iamgate bench`: times every request of a test file against its compiled
//! policies, like `opa bench`. Each sample times a batch of decisions
//! (building the request included) so that timer overhead stays small.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::engine::{Request, decide};
use crate::testfile::format::CompiledFile;

/// Timing of one request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub name: String,
    pub decision: String,
    pub median_ns: f64,
    pub p99_ns: f64,
    pub decisions_per_sec: f64,
    pub samples: usize,
    pub batch: usize,
}

/// Times each case of `file` for about `budget` each.
pub fn bench_file(file: &CompiledFile, budget: Duration) -> Vec<BenchResult> {
    let policies = file.applicable();
    let mut out = Vec::new();
    for case in &file.cases {
        let run = || {
            let req = Request::new(
                black_box(&file.principal),
                black_box(&case.action),
                black_box(&case.resource),
                black_box(&case.context),
            );
            let req = match &file.resource_account {
                Some(a) => req.with_resource_account(a),
                None => req,
            };
            black_box(decide(&policies, &req).outcome)
        };
        let decision = run().as_str().to_owned();
        // Size a batch to take about 20 µs.
        let mut batch = 1usize;
        loop {
            let t = Instant::now();
            for _ in 0..batch {
                run();
            }
            if t.elapsed() >= Duration::from_micros(20) || batch >= 1 << 20 {
                break;
            }
            batch *= 2;
        }
        let mut samples: Vec<f64> = Vec::new();
        let start = Instant::now();
        while start.elapsed() < budget || samples.len() < 50 {
            let t = Instant::now();
            for _ in 0..batch {
                run();
            }
            samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
            if samples.len() >= 1_000_000 {
                break;
            }
        }
        samples.sort_by(f64::total_cmp);
        let pick = |q: f64| -> f64 {
            let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(idx).copied().unwrap_or(0.0)
        };
        let median = pick(0.5);
        out.push(BenchResult {
            name: case.name.clone(),
            decision,
            median_ns: median,
            p99_ns: pick(0.99),
            decisions_per_sec: if median > 0.0 { 1e9 / median } else { 0.0 },
            samples: samples.len(),
            batch,
        });
    }
    out
}
