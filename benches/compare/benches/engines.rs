//! iamgate against cedar-policy and regorus, the same work on each side,
//! from one run:
//!
//! - `compare/per-principal/{iamgate,cedar,regorus}/...`: each engine holds
//!   one policy set per principal (iamgate's compiled `PolicySet`, a Cedar
//!   `PolicySet`, a regorus engine with that principal's policies as data),
//!   each with the SCP level, in a hash map keyed by ARN, and finds the
//!   caller's set per request: it decides on the caller's ten policies.
//! - `compare/one-set/{iamgate,cedar,regorus}/...`: all `n` identity
//!   policies attached to the one caller, in one set per engine: each
//!   decides on all `n`.
//!
//! Each with an allowed and an implicit-deny request of the generated EC2
//! scenario (`benches/support/scenario.rs`). Each timed iteration builds the
//! request and its context from strings; the policies are compiled once,
//! as in a server. Before timing, every engine must answer the scenario's
//! checked requests as expected, or the bench aborts with the reason.
//!
//! `IAMGATE_COMPARE_SIZES` (default `1000`) lists the scenario sizes
//! (identity policies, ten per user), e.g. `10,1000,10000`. Run it with
//! `benches/compare/run.sh [criterion options]`, which lints this crate
//! first and prints the medians and ratios. Outside `cargo bench` one small
//! scenario runs once, as a smoke test.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use iamgate_compare::iam::Attach;
use iamgate_compare::scenario::{self, Expect, Req};
use iamgate_compare::{BoxError, Engines};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        match sizes() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("IAMGATE_COMPARE_SIZES: {e}");
                std::process::exit(2);
            }
        }
    } else {
        vec![30]
    };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    for n in sizes {
        if let Err(e) = bench_size(&mut c, n) {
            eprintln!("compare bench aborted at {n} policies: {e}");
            std::process::exit(1);
        }
    }
    c.final_summary();
}

fn sizes() -> Result<Vec<usize>, BoxError> {
    match std::env::var("IAMGATE_COMPARE_SIZES") {
        Err(_) => Ok(vec![1_000]),
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .map_err(|e| format!("{n:?}: {e}").into())
            })
            .collect(),
    }
}

fn bench_size(c: &mut Criterion, n: usize) -> Result<(), BoxError> {
    let s = scenario::generate(n);
    let mut engines = Engines::new(&s)?;
    engines.verify(&s)?;
    let (cedar_own, cedar_all) = engines.cedar.policy_counts();
    eprintln!(
        "scenario {n}: {} users, {} identity policies ({} statements; the subject's own: {}), {} SCPs; \
         Cedar policies in the subject's set: {cedar_own}, in the one set: {cedar_all}",
        s.users.len(),
        s.identity.len(),
        engines.iam.statement_count(),
        engines.iam.subject_statement_count(),
        s.scps.len(),
    );
    let timed: Vec<Req> = scenario::benched(&s)
        .into_iter()
        .filter(|r| matches!(r.expect, Expect::Allowed | Expect::ImplicitDeny))
        .collect();

    let mut g = c.benchmark_group("compare");
    for (attach, name) in [
        (Attach::PerPrincipal, "per-principal"),
        (Attach::OneSet, "one-set"),
    ] {
        for r in &timed {
            let id = |engine: &str| format!("{name}/{engine}/{}/{n}", r.expect.as_str());
            g.sample_size(50);
            bench(&mut g, id("iamgate"), || {
                engines.iam.decide(attach, black_box(r))
            });
            // Cedar and regorus take milliseconds on large sets.
            g.sample_size(if attach == Attach::OneSet && n > 100 {
                10
            } else {
                20
            });
            bench(&mut g, id("cedar"), || {
                engines.cedar.decide(attach, black_box(r)).ok()
            });
            bench(&mut g, id("regorus"), || {
                engines.rego.decide(attach, black_box(r)).ok()
            });
        }
    }
    g.finish();
    Ok(())
}

fn bench<O>(g: &mut BenchmarkGroup<'_, WallTime>, id: String, mut f: impl FnMut() -> O) {
    g.bench_function(id, |b| b.iter(&mut f));
}
