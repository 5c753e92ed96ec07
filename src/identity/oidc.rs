//! OpenID Connect identity providers and the verification of their JSON
//! Web Tokens (Kubernetes service-account tokens, as EKS's issuers sign
//! them): the operator's `--oidc-provider ISSUER_URL=JWKS_FILE` and
//! `--oidc-audience ISSUER_URL=CLIENT_ID`, each provider's JSON Web Key Set
//! read from its file (and read again when the file changes), and
//! [`OidcProviders::verify`], which `AssumeRoleWithWebIdentity` calls.
//!
//! What is checked (RFC 7519, RFC 7515, IAM's OIDC provider rules): the
//! token's `iss` is exactly a configured issuer; its signature is RS256 or
//! ES256 under a key of that issuer's set, chosen by `kid`; the algorithm
//! is the key's (a header naming `none`, an HMAC or another key type is
//! refused, so a public key can never be used as an HMAC secret); `aud`
//! holds one of the issuer's client ids; `exp`, `nbf` and `iat` hold within
//! [`CLOCK_SKEW_SECS`]. Nothing in the token chooses the key set, the
//! algorithm family or the audiences.
//!
//! This module does not decide anything about roles (the trust policy does,
//! in `server::sts_web_identity`) and never logs a token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Tolerated clock difference for `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// Longest token taken (STS: `WebIdentityToken` up to 20,000 characters).
pub const MAX_TOKEN_LEN: usize = 20_000;
/// Largest JWKS file read.
const MAX_JWKS_BYTES: u64 = 1 << 20;
/// The audience a provider accepts when the operator names none (the one
/// EKS and the AWS SDKs use for service-account tokens).
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// Why a provider's configuration or key set was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    #[error("--oidc-provider `{0}`: expected ISSUER_URL=JWKS_FILE")]
    Syntax(String),
    #[error("--oidc-audience `{0}`: expected ISSUER_URL=CLIENT_ID")]
    AudienceSyntax(String),
    #[error(
        "OIDC issuer `{0}`: must be an https:// URL without query or fragment (IAM's provider URL)"
    )]
    Issuer(String),
    #[error("OIDC issuer `{0}` is configured twice")]
    Duplicate(String),
    #[error("--oidc-audience names issuer `{0}`, which no --oidc-provider configures")]
    AudienceWithoutProvider(String),
    #[error("cannot read JWKS file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("JWKS file `{path}`: {source}")]
    Jwks { path: String, source: JwksError },
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("no `keys` array")]
    NoKeys,
    #[error("keys[{index}]: no `{name}`")]
    Missing { index: usize, name: &'static str },
    #[error("keys[{index}].{name}: not base64url")]
    NotBase64 {
        index: usize,
        name: &'static str,
        source: base64::DecodeError,
    },
    #[error("keys[{index}]: RSA keys must have at least 2048 bits")]
    ShortRsa { index: usize },
    #[error("keys[{index}]: P-256 coordinates must be 32 bytes")]
    BadPoint { index: usize },
    #[error("no RS256 or ES256 signing key")]
    NoSigningKey,
}

/// Why a web identity token was refused; each maps to STS's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebTokenError {
    /// Not a JWS compact token, bad base64 or JSON, missing claims.
    #[error("{0}")]
    Malformed(&'static str),
    /// `iss` names no configured provider.
    #[error("No OpenIDConnect provider found in your account for {0}")]
    UnknownIssuer(String),
    /// `alg` is not the algorithm of the chosen key (or is `none`/HMAC).
    #[error("The token's signing algorithm is not accepted for this key")]
    Algorithm,
    /// No key of the provider's set matches the token's `kid`.
    #[error("No key of the OpenIDConnect provider's key set matches the token")]
    NoKey,
    #[error("The token's signature is invalid")]
    Signature,
    #[error("Incorrect token audience")]
    Audience,
    #[error("Token expired: current date/time {now} must be before the expiration date/time {exp}")]
    Expired { now: u64, exp: u64 },
    #[error("The token is not valid yet")]
    NotYetValid,
    /// A claim the provider rejected (`sub` missing or empty).
    #[error("{0}")]
    Claim(&'static str),
}

impl WebTokenError {
    /// STS's error code and HTTP status for this refusal.
    pub fn sts_code(&self) -> (&'static str, u16) {
        match self {
            WebTokenError::Expired { .. } => ("ExpiredTokenException", 400),
            WebTokenError::Claim(_) => ("IDPRejectedClaim", 403),
            _ => ("InvalidIdentityToken", 400),
        }
    }
}

/// The algorithm a key verifies with; taken from the key, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// One verification key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    pub alg: Alg,
    /// RSA: modulus and exponent (big-endian, no leading zeros);
    /// EC P-256: the uncompressed point `04 || x || y` in `n`.
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Jwk {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature;
        match self.alg {
            Alg::Rs256 => signature::RsaPublicKeyComponents {
                n: &self.n,
                e: &self.e,
            }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
            .is_ok(),
            Alg::Es256 => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.n)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

/// A JSON Web Key Set: the keys usable for RS256 or ES256 signatures
/// (`use` absent or `sig`); others (encryption keys, HMAC secrets, other
/// curves) are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Reads a JWKS document (`{"keys": [...]}`).
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_str(text).map_err(JwksError::NotJson)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeys)?;
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let field = |name: &str| k.get(name).and_then(Value::as_str);
            if field("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let b64 = |name: &'static str| -> Result<Vec<u8>, JwksError> {
                let v = field(name).ok_or(JwksError::Missing { index: i, name })?;
                URL_SAFE_NO_PAD
                    .decode(v.trim_end_matches('='))
                    .map_err(|source| JwksError::NotBase64 {
                        index: i,
                        name,
                        source,
                    })
            };
            let declared = field("alg");
            let jwk = match field("kty") {
                Some("RSA") => {
                    if declared.is_some_and(|a| a != "RS256") {
                        continue;
                    }
                    let n = strip_zeros(b64("n")?);
                    let e = strip_zeros(b64("e")?);
                    if n.len() < 256 || e.is_empty() {
                        return Err(JwksError::ShortRsa { index: i });
                    }
                    Jwk {
                        kid: field("kid").map(str::to_owned),
                        alg: Alg::Rs256,
                        n,
                        e,
                    }
                }
                Some("EC") => {
                    if field("crv") != Some("P-256") || declared.is_some_and(|a| a != "ES256") {
                        continue;
                    }
                    let (x, y) = (b64("x")?, b64("y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(JwksError::BadPoint { index: i });
                    }
                    let mut point = Vec::with_capacity(65);
                    point.push(4);
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    Jwk {
                        kid: field("kid").map(str::to_owned),
                        alg: Alg::Es256,
                        n: point,
                        e: Vec::new(),
                    }
                }
                _ => continue,
            };
            out.push(jwk);
        }
        if out.is_empty() {
            return Err(JwksError::NoSigningKey);
        }
        Ok(Self { keys: out })
    }

    /// The key for a token: the one with its `kid`, or, for a token without
    /// `kid`, the only key of the set.
    fn select(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

/// The claims of a verified token that STS and the trust policy use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The provider's issuer URL as configured (equal to `iss`).
    pub issuer: String,
    /// The issuer without `https://`: the provider ARN's resource and the
    /// prefix of its condition keys.
    pub issuer_host_path: String,
    pub sub: String,
    /// `aud` (one or several).
    pub aud: Vec<String>,
    pub azp: Option<String>,
    /// `amr`, when present (one or several).
    pub amr: Option<Vec<String>>,
    pub exp: u64,
    pub iat: Option<u64>,
}

/// One configured provider.
#[derive(Debug)]
pub struct OidcProvider {
    pub issuer: String,
    pub host_path: String,
    pub audiences: Vec<String>,
    jwks_path: PathBuf,
    keys: Mutex<LoadedKeys>,
}

#[derive(Debug)]
struct LoadedKeys {
    stamp: Option<Stamp>,
    jwks: Arc<Jwks>,
}

/// What tells a changed file: modification time, length and inode (a
/// Kubernetes ConfigMap or Secret volume swaps files by rename).
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn read_jwks(path: &Path) -> Result<Jwks, OidcConfigError> {
    let shown = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|source| OidcConfigError::Read {
            path: shown.clone(),
            source,
        })?
        .len();
    if len > MAX_JWKS_BYTES {
        return Err(OidcConfigError::Jwks {
            path: shown,
            source: JwksError::TooLarge(MAX_JWKS_BYTES),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| OidcConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    Jwks::parse(&text).map_err(|source| OidcConfigError::Jwks {
        path: shown,
        source,
    })
}

impl OidcProvider {
    /// A provider from its issuer URL, key set file and client ids (the
    /// key set must load now).
    pub fn open(
        issuer: &str,
        jwks_path: &Path,
        audiences: Vec<String>,
    ) -> Result<Self, OidcConfigError> {
        let host_path = issuer_host_path(issuer)?;
        let st = stamp(jwks_path);
        let jwks = read_jwks(jwks_path)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            host_path,
            audiences,
            jwks_path: jwks_path.to_owned(),
            keys: Mutex::new(LoadedKeys {
                stamp: st,
                jwks: Arc::new(jwks),
            }),
        })
    }

    /// `arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST_AND_PATH` in `account`.
    pub fn arn(&self, partition: &str, account: &str) -> String {
        format!(
            "arn:{partition}:iam::{account}:oidc-provider/{}",
            self.host_path
        )
    }

    /// The current key set: read again when the file changed; a file that
    /// no longer reads or parses keeps the keys that were good.
    pub fn keys(&self) -> Arc<Jwks> {
        let mut loaded = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamp(&self.jwks_path);
        if now.is_some() && now != loaded.stamp {
            match read_jwks(&self.jwks_path) {
                Ok(jwks) => {
                    tracing::info!(issuer = %self.issuer, keys = jwks.keys.len(), "OIDC key set reloaded");
                    loaded.jwks = Arc::new(jwks);
                    loaded.stamp = now;
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "OIDC key set refused; the previous keys stay");
                    loaded.stamp = now;
                }
            }
        }
        loaded.jwks.clone()
    }
}

/// `https://HOST/PATH` -> `HOST/PATH` (IAM keeps the path and any trailing
/// slash as given).
pub fn issuer_host_path(issuer: &str) -> Result<String, OidcConfigError> {
    let bad = || OidcConfigError::Issuer(issuer.to_owned());
    let rest = issuer.strip_prefix("https://").ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || rest.contains(['?', '#', ' '])
        || rest.chars().any(|c| c.is_control())
        || rest.len() > 255
    {
        return Err(bad());
    }
    Ok(rest.to_owned())
}

/// The configured providers, by issuer URL.
#[derive(Debug, Default)]
pub struct OidcProviders {
    by_issuer: BTreeMap<String, OidcProvider>,
}

impl OidcProviders {
    /// Providers from `ISSUER_URL=JWKS_FILE` and `ISSUER_URL=CLIENT_ID`
    /// entries; a provider without client ids accepts
    /// [`DEFAULT_AUDIENCE`].
    pub fn from_flags(providers: &[String], audiences: &[String]) -> Result<Self, OidcConfigError> {
        let mut auds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for a in audiences {
            let (iss, id) = a
                .rsplit_once('=')
                .filter(|(i, id)| !i.is_empty() && !id.is_empty())
                .ok_or_else(|| OidcConfigError::AudienceSyntax(a.clone()))?;
            auds.entry(iss).or_default().push(id.to_owned());
        }
        let mut by_issuer = BTreeMap::new();
        for p in providers {
            let (iss, file) = p
                .split_once("=")
                .filter(|(i, f)| !i.is_empty() && !f.is_empty())
                .ok_or_else(|| OidcConfigError::Syntax(p.clone()))?;
            if by_issuer.contains_key(iss) {
                return Err(OidcConfigError::Duplicate(iss.to_owned()));
            }
            let ids = auds
                .remove(iss)
                .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]);
            let provider = OidcProvider::open(iss, Path::new(file), ids)?;
            by_issuer.insert(iss.to_owned(), provider);
        }
        if let Some(iss) = auds.keys().next() {
            return Err(OidcConfigError::AudienceWithoutProvider((*iss).to_owned()));
        }
        Ok(Self { by_issuer })
    }

    /// The providers (for logging at startup).
    pub fn iter(&self) -> impl Iterator<Item = &OidcProvider> {
        self.by_issuer.values()
    }

    /// Whether no provider is configured.
    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    /// Verifies a token at `now` and returns its claims and provider.
    pub fn verify(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<(VerifiedToken, &OidcProvider), WebTokenError> {
        let parts = split(token)?;
        // The issuer decides which keys are tried: read it before
        // verifying, trust nothing else of the payload until then.
        let iss = parts
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(WebTokenError::Malformed("The token has no `iss` claim"))?;
        let provider = self
            .by_issuer
            .get(iss)
            .ok_or_else(|| WebTokenError::UnknownIssuer(printable(iss)))?;
        let keys = provider.keys();
        let verified = verify_parts(&parts, &keys, provider, now)?;
        Ok((verified, provider))
    }
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// A token taken apart (not verified).
struct Parts<'t> {
    signed: &'t str,
    header: Value,
    claims: Value,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, WebTokenError> {
    let bad = WebTokenError::Malformed;
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN || token.len() < 4 {
        return Err(bad("The token is not a JWT of an accepted length"));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad(
            "The token is not a signed JWT (header.payload.signature)",
        ));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let json = |part: &str| -> Option<Value> {
        let v: Value = serde_json::from_slice(&decode(part)?).ok()?;
        v.is_object().then_some(v)
    };
    let header = json(h).ok_or(bad("The token's header is not base64url JSON"))?;
    let claims = json(p).ok_or(bad("The token's payload is not base64url JSON"))?;
    let signature = decode(s).ok_or(bad("The token's signature is not base64url"))?;
    let signed = token
        .get(..h.len() + 1 + p.len())
        .ok_or(bad("The token is not a signed JWT"))?;
    Ok(Parts {
        signed,
        header,
        claims,
        signature,
    })
}

fn verify_parts(
    parts: &Parts<'_>,
    keys: &Jwks,
    provider: &OidcProvider,
    now: SystemTime,
) -> Result<VerifiedToken, WebTokenError> {
    let header = &parts.header;
    if header.get("crit").is_some() {
        return Err(WebTokenError::Malformed(
            "The token has critical header parameters",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(WebTokenError::Algorithm)?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => {
            return Err(WebTokenError::Malformed(
                "The token's `kid` is not a string",
            ));
        }
    };
    let key = keys.select(kid).ok_or(WebTokenError::NoKey)?;
    // The key fixes the algorithm: `none`, HS256 (a public key used as an
    // HMAC secret) or ES256 against an RSA key never reach a verifier.
    if alg != key.alg.name() {
        return Err(WebTokenError::Algorithm);
    }
    if !key.verify(parts.signed.as_bytes(), &parts.signature) {
        return Err(WebTokenError::Signature);
    }
    let claims = &parts.claims;
    let now = crate::identity::time::epoch_secs(now);
    let number = |name: &'static str| -> Result<Option<u64>, WebTokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .map(Some)
                .ok_or(WebTokenError::Malformed("A time claim is not a number")),
        }
    };
    let exp = number("exp")?.ok_or(WebTokenError::Malformed("The token has no `exp` claim"))?;
    if now >= exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(WebTokenError::Expired { now, exp });
    }
    if number("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(CLOCK_SKEW_SECS)) {
        return Err(WebTokenError::NotYetValid);
    }
    let iat = number("iat")?;
    if iat.is_some_and(|iat| iat > now.saturating_add(CLOCK_SKEW_SECS)) {
        return Err(WebTokenError::NotYetValid);
    }
    let strings = |name: &str| -> Result<Option<Vec<String>>, WebTokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or(WebTokenError::Malformed("A list claim holds a non-string")),
            Some(_) => Err(WebTokenError::Malformed("A claim has the wrong type")),
        }
    };
    let aud = strings("aud")?.unwrap_or_default();
    let azp = match claims.get("azp") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(WebTokenError::Malformed(
                "The token's `azp` is not a string",
            ));
        }
    };
    // IAM matches the client id list against `azp` when present, else `aud`.
    let accepted = match &azp {
        Some(a) => provider.audiences.contains(a),
        None => aud.iter().any(|a| provider.audiences.contains(a)),
    };
    if !accepted {
        return Err(WebTokenError::Audience);
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(WebTokenError::Claim("The token has no `sub` claim"))?;
    Ok(VerifiedToken {
        issuer: provider.issuer.clone(),
        issuer_host_path: provider.host_path.clone(),
        sub: sub.to_owned(),
        aud,
        azp,
        amr: strings("amr")?,
        exp,
        iat,
    })
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
mod tests;
