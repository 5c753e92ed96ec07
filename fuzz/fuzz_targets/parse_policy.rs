//! Fuzzes the policy parser and compiler: any input must give a document or
//! a located error, never a panic; a parsed document must compile and
//! evaluate without panicking.
#![no_main]

use std::sync::Arc;

use iamgate::engine::{Applicable, CompiledPolicy, Context, PolicySet, Principal, Request, decide};
use iamgate::policy::{PolicyKind, parse_document_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [PolicyKind::Identity, PolicyKind::Resource] {
        if let Ok(doc) = parse_document_str(text, kind) {
            let set = PolicySet::new(vec![Arc::new(CompiledPolicy::compile("fuzz", kind, &doc))]);
            if let Ok(p) = Principal::parse("arn:aws:iam::111122223333:user/fuzz") {
                let ctx = Context::new().with("aws:username", "fuzz");
                let req = Request::new(
                    &p,
                    "ec2:RunInstances",
                    "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
                    &ctx,
                );
                let applicable = Applicable {
                    identity: Some(&set),
                    resource: Some(&set),
                    ..Applicable::default()
                };
                let _ = decide(&applicable, &req);
            }
        }
    }
});
