//! Build script: compiles iamgate's own gRPC API (`proto/iamgate/v1/*.proto`)
//! into Rust (messages, server and client) plus an encoded file descriptor
//! set for server reflection. Uses the vendored `protoc` unless `PROTOC`
//! names one.

use std::path::PathBuf;

/// The protos of iamgate's API, relative to the crate root.
const PROTOS: &[&str] = &[
    "proto/iamgate/v1/authorizer.proto",
    "proto/iamgate/v1/inventory.proto",
    "proto/iamgate/v1/network.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = tonic_prost_build::Config::new();
    match std::env::var_os("PROTOC") {
        Some(protoc) => config.protoc_executable(protoc),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join("iamgate_v1_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    Ok(())
}
