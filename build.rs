//! Build script: compiles iamgate's own gRPC API (`proto/iamgate/v1/*.proto`)
//! into Rust (messages, server and client) plus an encoded file descriptor
//! set for server reflection, and encodes the descriptor set of Envoy's
//! `envoy.service.auth.v3` (from the protos the `envoy-types` crate ships)
//! so that reflection also describes the ext_authz service. Uses the
//! vendored `protoc` unless `PROTOC` names one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The protos of iamgate's API, relative to the crate root.
const PROTOS: &[&str] = &[
    "proto/iamgate/v1/authorizer.proto",
    "proto/iamgate/v1/inventory.proto",
    "proto/iamgate/v1/network.proto",
];

/// Envoy's ext_authz service, relative to the `envoy-types` proto roots.
const ENVOY_AUTH_PROTO: &str = "envoy/service/auth/v3/external_auth.proto";
/// The directories under `envoy-types/proto` that its imports resolve in.
const ENVOY_PROTO_ROOTS: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec",
];

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-env-changed=ENVOY_TYPES_PROTO_DIR");
    let protoc = match std::env::var_os("PROTOC") {
        Some(protoc) => PathBuf::from(protoc),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(&protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join("iamgate_v1_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    envoy_auth_descriptor(&protoc, &out_dir.join("envoy_auth_v3_descriptor.bin"))
}

/// Encodes `envoy.service.auth.v3` and everything it imports into `out`.
fn envoy_auth_descriptor(protoc: &Path, out: &Path) -> Result<(), BoxError> {
    let root = envoy_types_proto_dir()?;
    let mut cmd = Command::new(protoc);
    cmd.arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", out.display()));
    for dir in ENVOY_PROTO_ROOTS {
        cmd.arg(format!("-I{}", root.join(dir).display()));
    }
    // The well-known types (`google/protobuf/*.proto`).
    if let Ok(include) = protoc_bin_vendored::include_path() {
        cmd.arg(format!("-I{}", include.display()));
    }
    cmd.arg(ENVOY_AUTH_PROTO);
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("protoc failed ({status}) on {ENVOY_AUTH_PROTO}").into());
    }
    Ok(())
}

/// The `proto` directory of the `envoy-types` crate this build uses:
/// `ENVOY_TYPES_PROTO_DIR` when set, otherwise found through
/// `cargo metadata` (the package's manifest path).
fn envoy_types_proto_dir() -> Result<PathBuf, BoxError> {
    if let Some(dir) = std::env::var_os("ENVOY_TYPES_PROTO_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8(output.stdout)?;
    // Every package's `"manifest_path":"..."`; the crate's directory is
    // `envoy-types-VERSION` in a registry, `envoy-types` when vendored.
    const KEY: &str = "\"manifest_path\":\"";
    text.match_indices(KEY)
        .filter_map(|(at, _)| {
            let rest = text.get(at + KEY.len()..)?;
            let path = Path::new(rest.get(..rest.find('"')?)?);
            let dir = path.parent()?;
            let name = dir.file_name()?.to_str()?;
            let is_envoy_types = name == "envoy-types"
                || name
                    .strip_prefix("envoy-types-")
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
            is_envoy_types.then(|| dir.join("proto"))
        })
        .find(|dir| dir.is_dir())
        .ok_or_else(|| {
            "cannot find the envoy-types crate's proto directory (set ENVOY_TYPES_PROTO_DIR)".into()
        })
}
