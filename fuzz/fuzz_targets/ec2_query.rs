//! Fuzzes the EC2 Query API front door's pure half: any request target and
//! form body through `QueryParams::parse_with_limit`, then `map_call` on the
//! demo bundle's inventory. Nothing may panic, and what is accepted must
//! hold the parser's contracts: every name is canonical and unique (ASCII
//! case-insensitively), lookups find every parameter, a list is `1..=N`,
//! the limit holds, and a mapped call has at least one authorization.
#![no_main]

use std::sync::LazyLock;

use iamgate::bundle::demo;
use iamgate::ec2::bundle_data::BundleInventory;
use iamgate::ec2::inventory::Inventory;
use iamgate::ec2::mapping::map_call;
use iamgate::ec2::query::{Body, QueryParams};
use libfuzzer_sys::fuzz_target;

static INVENTORY: LazyLock<Inventory> = LazyLock::new(|| {
    let data = BundleInventory::load(&demo::files()).expect("the demo inventory loads");
    (*data.inventory).clone()
});

const LIMIT: usize = 64;

fn canonical(name: &str) -> bool {
    name.split('.').all(|seg| match seg.as_bytes().first() {
        Some(b'1'..=b'9') => seg.bytes().all(|b| b.is_ascii_digit()),
        Some(b) if b.is_ascii_alphabetic() => {
            seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
        _ => false,
    })
}

fuzz_target!(|data: (&str, &[u8], bool)| {
    let (query, body, form) = data;
    let target = format!("/?{query}");
    let content_type = form.then_some("application/x-www-form-urlencoded");
    let Ok(params) = QueryParams::parse_with_limit(
        &target,
        Some(Body {
            content_type,
            bytes: body,
        }),
        LIMIT,
    ) else {
        return;
    };
    assert!(params.len() <= LIMIT);
    let mut seen = std::collections::HashSet::new();
    for (name, value) in params.iter() {
        assert!(canonical(name), "{name:?}");
        assert!(seen.insert(name.to_ascii_lowercase()), "{name:?} twice");
        assert_eq!(params.get(name), Some(value));
        assert_eq!(params.get(&name.to_ascii_uppercase()), Some(value));
        assert!(!value.chars().any(char::is_control));
        if let Some((prefix, _)) = name.split_once('.') {
            assert!(params.has_prefix(prefix));
            if let Ok(indexes) = params.indices(prefix) {
                assert!(indexes.iter().copied().eq(1..=indexes.len() as u32));
            }
        }
    }
    for region in ["us-east-1", "cn-north-1"] {
        if let Ok(call) = map_call(&params, region, "111111111111", &INVENTORY) {
            assert!(!call.authorizations.is_empty());
        }
    }
});
