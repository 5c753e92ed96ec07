//! Fuzzes the in-place `CheckRequest` reader against prost: it must never
//! panic; what it refuses as malformed, prost refuses; what both read, they
//! read alike (metadata paths included); and what it leaves to prost
//! (merged messages) reads alike once prost has re-encoded it, as the
//! server does.
#![no_main]

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use iamgate::server::ext_authz::mapping::{JWT_AUTHN_NAMESPACE, metadata_value};
use iamgate::server::ext_authz::wire::{CheckView, MetadataPath, WireError};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// Paths the server reads for `--jwt-principal`, and a few others.
const PATHS: &[MetadataPath<'static>] = &[
    [JWT_AUTHN_NAMESPACE, "jwt_payload", "sub"],
    [JWT_AUTHN_NAMESPACE, "a", "b"],
    ["", "", ""],
    ["a", "b", "c"],
];

fn assert_same(view: &CheckView<'_>, m: &CheckRequest) {
    let a = m.attributes.as_ref();
    let metadata = a.and_then(|a| a.metadata_context.as_ref());
    let reference: Vec<_> = PATHS.iter().map(|p| metadata_value(metadata, *p)).collect();
    assert_eq!(view.metadata.to_vec(), reference);
    assert_eq!(view.has_attributes, a.is_some());
    let source = a.and_then(|a| a.source.as_ref());
    assert_eq!(
        view.source_principal,
        source.map(|s| s.principal.as_str()).unwrap_or_default()
    );
    let address = source
        .and_then(|s| s.address.as_ref())
        .and_then(|a| a.address.as_ref())
        .and_then(|a| match a {
            AddressKind::SocketAddress(s) => Some(s.address.as_str()),
            _ => None,
        });
    assert_eq!(view.source_address, address);
    let extensions = a.map(|a| &a.context_extensions);
    let mut keys: Vec<&str> = view.extensions.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), extensions.map_or(0, |e| e.len()));
    for (k, v) in extensions.into_iter().flatten() {
        assert_eq!(view.extension(k), Some(v.as_str()));
    }
    let http = a
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    assert_eq!(view.http.is_some(), http.is_some());
    let (Some(v), Some(h)) = (view.http.as_ref(), http) else {
        return;
    };
    assert_eq!(
        [v.method, v.path, v.host, v.scheme],
        [&h.method, &h.path, &h.host, &h.scheme].map(String::as_str)
    );
    let mut keys: Vec<&str> = v.headers.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), h.headers.len());
    for (k, value) in &h.headers {
        assert_eq!(v.header(k), Some(value.as_str()));
    }
    let raw: Vec<_> = h
        .header_map
        .iter()
        .flat_map(|m| &m.headers)
        .map(|r| (r.key.as_str(), r.value.as_str(), r.raw_value.as_slice()))
        .collect();
    let read: Vec<_> = v
        .raw_headers
        .iter()
        .map(|r| (r.key, r.value, r.raw_value))
        .collect();
    assert_eq!(read, raw);
}

fuzz_target!(|data: &[u8]| {
    let reference = CheckRequest::decode(data);
    match (CheckView::parse_with(data, PATHS), &reference) {
        (Ok(view), Ok(m)) => assert_same(&view, m),
        (Err(WireError::Malformed(e)), Ok(_)) => panic!("refused what prost decodes: {e}"),
        (Err(WireError::Unusual), Ok(m)) => {
            let canonical = m.encode_to_vec();
            match CheckView::parse_with(&canonical, PATHS) {
                Ok(view) => assert_same(&view, m),
                Err(e) => panic!("prost's own encoding does not read: {e}"),
            }
        }
        (_, Err(_)) => {}
    }
});
