//! Kubernetes as a service behind iamgate: the review objects the API
//! server posts to webhooks ([`review`]), the IAM principal of a
//! Kubernetes user ([`identity`]: the AWS IAM authenticator's `extra`, or
//! EKS's `aws-auth` mapping read in reverse), and the ACK EC2 controller's
//! kinds as the EC2 Query API calls they cause ([`ack`]), which the one EC2
//! mapping ([`crate::ec2::mapping`]) turns into IAM authorizations.
//!
//! Pure mapping: no listeners, no snapshot, no metrics. Deciding and
//! answering is [`crate::server::webhook`]'s job.

pub mod ack;
pub mod identity;
pub mod review;
