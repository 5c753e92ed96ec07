#![forbid(unsafe_code)]
//! iamgate: an authorization sidecar that decides exactly as AWS IAM would.
//!
//! - [`policy`]: the IAM policy language (pure).
//! - [`engine`]: compiled policy sets and the evaluation flow (pure).
//! - [`ec2`]: the EC2 service model (catalog).
//! - [`identity`]: access keys and SigV4 verification (who is calling).
//! - [`testfile`]: policy test files, their runner and `bench`.
//! - [`validate`]: policy validation findings.
//! - [`uri`]: strict percent-decoding of request targets (every mapping).
//! - [`k8s`]: Kubernetes reviews, users' IAM principals, ACK EC2 kinds.

pub mod bundle;
pub mod commands;
pub mod ec2;
pub mod engine;
pub mod identity;
pub mod k8s;
pub mod policy;
pub mod registry;
pub mod s3;
pub mod server;
pub mod service;
pub mod sts;
pub mod telemetry;
pub mod testfile;
pub mod tls_roots;
pub mod uri;
pub mod validate;
