//! What the request sample of decision-diff gated reloads (issue 15) adds to
//! every decision, beside the decision itself, on the built-in demo bundle:
//!
//! ```text
//! cargo bench --bench sample
//! ```
//!
//! `authorize` is one decision (the reference); `offer_default` offers the
//! same request to a sample taking one in 16 (the default: 15 of 16 calls
//! only count); `offer_every_duplicate` picks every request, which is then
//! hashed, found in the sample and not copied (the steady state of a
//! de-duplicated sample); `offer_every_new` copies a request each time into
//! a full sample (the worst case).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use iamgate::bundle::sample::RequestSample;
use iamgate::bundle::{AuthzRequest, demo, load_files};
use iamgate::engine::Context;

fn request(n: usize) -> AuthzRequest {
    AuthzRequest {
        principal_arn: "arn:aws:iam::111122223333:user/bob".into(),
        action: "ec2:StopInstances".into(),
        resource: format!("arn:aws:ec2:us-east-1:111122223333:instance/i-{n:017x}"),
        context: Context::new()
            .with("aws:SourceIp", "203.0.113.7")
            .with("aws:RequestedRegion", "us-east-1"),
        outcome_only: true,
        ..AuthzRequest::default()
    }
}

fn bench(c: &mut Criterion) {
    let Ok(snapshot) = load_files(&demo::files(), "demo") else {
        return;
    };
    let req = request(1);
    c.bench_function("authorize", |b| {
        b.iter(|| black_box(snapshot.authorize(black_box(&req)).is_ok()))
    });
    let sample = RequestSample::default();
    c.bench_function("offer_default", |b| {
        b.iter(|| sample.offer(black_box(&req)))
    });
    let every = RequestSample::new(1024, 1);
    c.bench_function("offer_every_duplicate", |b| {
        b.iter(|| every.offer(black_box(&req)))
    });
    let reqs: Vec<AuthzRequest> = (0..4096).map(request).collect();
    let full = RequestSample::new(1024, 1);
    let mut i = 0usize;
    c.bench_function("offer_every_new", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            if let Some(r) = reqs.get(i) {
                full.offer(black_box(r));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
