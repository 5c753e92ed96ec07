//! Decision benches: iamgate at 10, 1,000 and 10,000 identity policies on
//! the allowed, implicitDeny and explicitDeny paths of the generated EC2
//! control-plane scenario (`support/scenario.rs`).
//!
//! Run with `cargo bench --bench engine`. Bench ids:
//! `engine/{iamgate,iamgate-one-set}/{allowed,implicitDeny,explicitDeny}/{10,1000,10000}`.
//!
//! - `iamgate`: the subject's own identity policies (ten; iamgate compiles
//!   one `PolicySet` per principal), looked up by ARN in the snapshot of all
//!   users' sets, plus the SCP level.
//! - `iamgate-one-set`: all `n` policies attached to the subject, one
//!   `PolicySet` (the worst case for the action index).
//!
//! The same scenario through cedar-policy and regorus, with the same work
//! on each side, is the comparison crate's bench (`benches/compare`), kept
//! out of this crate so that its tests and examples do not build them.
//!
//! Each timed iteration builds the request from strings (context included);
//! the caller (principal) and the compiled policies are prepared once, as in
//! a server. Before timing, iamgate must answer every request of
//! [`scenario::checks`] as expected, or the bench aborts with the reason.
//!
//! Outside `cargo bench` (e.g. `cargo test --benches`) only the 10-policy
//! scenario runs, once, as a smoke test.

use std::error::Error;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

#[path = "support/scenario.rs"]
mod scenario;

#[path = "support/iamgate.rs"]
mod iam;

use iam::{Attach, Iam};
use scenario::{Expect, Req};

type BoxError = Box<dyn Error>;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    let sizes: &[usize] = if full { &SIZES } else { &SIZES[..1] };
    for &n in sizes {
        if let Err(e) = bench_size(&mut c, n) {
            eprintln!("engine bench aborted at {n} policies: {e}");
            std::process::exit(1);
        }
    }
    c.final_summary();
}

fn expect(n: usize, engine: &str, r: &Req, got: iamgate::engine::Outcome) -> Result<(), BoxError> {
    let want = r.expect.as_str();
    if got.as_str() == want {
        Ok(())
    } else {
        Err(format!(
            "{n} policies, request `{}` ({} on {}): {engine} decides {got}, the scenario expects {want}",
            r.name, r.action, r.resource
        )
        .into())
    }
}

fn bench_size(c: &mut Criterion, n: usize) -> Result<(), BoxError> {
    let s = scenario::generate(n);
    let benched = scenario::benched(&s);
    let order = [Expect::Allowed, Expect::ImplicitDeny, Expect::ExplicitDeny];
    if benched.iter().map(|r| r.expect).ne(order) {
        return Err("the benched requests are not allowed, implicitDeny, explicitDeny".into());
    }
    let iam = Iam::new(&s)?;
    for r in scenario::checks(&s) {
        expect(n, "iamgate", &r, iam.decide(Attach::PerPrincipal, &r))?;
    }
    // The benched requests keep their outcome with all `n` policies
    // attached (more of the other checks would be allowed).
    for r in &benched {
        expect(n, "iamgate (one set)", r, iam.decide(Attach::OneSet, r))?;
    }
    eprintln!(
        "scenario {n}: {} users, {} identity policies ({} statements; subject has {}), {} SCPs",
        s.users.len(),
        s.identity.len(),
        iam.statement_count(),
        iam.subject_statement_count(),
        s.scps.len(),
    );

    let mut g = c.benchmark_group("engine");
    for (name, attach) in [
        ("iamgate", Attach::PerPrincipal),
        ("iamgate-one-set", Attach::OneSet),
    ] {
        for r in &benched {
            g.bench_function(format!("{name}/{}/{n}", r.expect.as_str()), |b| {
                b.iter(|| iam.decide(attach, black_box(r)))
            });
        }
    }
    g.finish();
    Ok(())
}
