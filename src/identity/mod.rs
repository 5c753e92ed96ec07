//! Who is calling: IAM users' long-term access keys ([`credentials`]),
//! temporary session credentials sealed under the session key
//! ([`session`]) and Signature Version 4 verification of the requests they
//! sign ([`sigv4`]).
//!
//! Pure: nothing here knows of tokio, Envoy or metrics. The server reads
//! the credentials file, keeps it current and adapts a request to
//! [`sigv4::SignedRequest`]; the principal a verified signature names comes
//! from the bundle's users ([`credentials::resolve_user`]). Secrets never
//! leave this module in text: `Debug` redacts them and no error carries
//! them.

pub mod credentials;
pub mod imds_token;
pub mod mfa;
pub mod oidc;
pub mod session;
pub mod session_cache;
pub mod sigv4;
pub mod time;

pub use credentials::{AccessKey, CredentialStore, CredentialsError, KeyStatus, ResolveError};
pub use session::{IssuedCredentials, SessionClaims, SessionKeyError, SessionKeys, TokenError};
pub use sigv4::{Caller, Expected, HeaderSource, SigV4Error, SignedRequest, verify, verify_caller};
