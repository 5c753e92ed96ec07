//! The STS service: its Query API parameters ([`params`]), its XML answers
//! and errors ([`response`]), and what a session is when it calls
//! ([`session`]: the principal, session policies, tags and context keys a
//! decision for a session uses).
//!
//! [`message`] is the encoded authorization failure message that
//! `DecodeAuthorizationMessage` reads and every service's front door
//! writes (EC2's `UnauthorizedOperation`, the Kubernetes webhook), under
//! the one key the server holds.
//!
//! Pure: no tokio, and no I/O but reading that key's file. The listener that verifies signatures, decides
//! and issues credentials is `server::sts`; the sealed credentials
//! themselves are [`crate::identity::session`].

pub mod message;
pub mod params;
pub mod response;
pub mod session;
pub mod web_identity;

/// The service in the credential scope of STS requests.
pub const SIGNING_SERVICE: &str = "sts";
/// STS's XML namespace.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
