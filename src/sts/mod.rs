//! The STS service: its Query API parameters ([`params`]), its XML answers
//! and errors ([`response`]), and what a session is when it calls
//! ([`session`]: the principal, session policies, tags and context keys a
//! decision for a session uses).
//!
//! Pure: no I/O, no tokio. The listener that verifies signatures, decides
//! and issues credentials is `server::sts`; the sealed credentials
//! themselves are [`crate::identity::session`].

pub mod params;
pub mod response;
pub mod session;
pub mod web_identity;

/// The service in the credential scope of STS requests.
pub const SIGNING_SERVICE: &str = "sts";
/// STS's XML namespace.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
